"""`study.ablation`'s numbers and decisions on crafted runs, checked against scipy and statsmodels (fast: mutmut's)."""
from __future__ import annotations

import dataclasses
import hashlib
import json

import numpy as np
import pytest
from scipy import stats as scipy_stats
from statsmodels.stats.multitest import multipletests

from study import ablation
from study.config import ReportConfig, StudyError, config_key
from study.records import Run

SOURCE = {"optimizer": "adam", "learning_rate": 0.001, "dropout_1": 0.2, "dropout_2": 0.3, "dropout_3": 0.4,
          "batch_size": 64, "augmentation": "none", "label_smoothing": 0.0, "schedule": "constant",
          "weight_decay": 0.0}  # every value: ablation.json holds the complete configurations
TARGET = {**SOURCE, "dropout_1": 0.1, "dropout_2": 0.4, "batch_size": 32, "augmentation": "flip",
          "label_smoothing": 0.1}
SEEDS = (7, 8, 9, 10, 11)
GROUP = ("dropout_1", "dropout_2")


def _effects(hp: dict) -> tuple[float, float]:
    """(test, validation) gain of a configuration: flips help most on test, batch 32 most on validation, the
    dropouts help only with flips (an interaction), label smoothing hurts on validation."""
    flip, b32 = hp.get("augmentation") == "flip", hp.get("batch_size") == 32
    drop, ls = hp.get("dropout_1") == 0.1, hp.get("label_smoothing") == 0.1
    test = 0.040 * flip + 0.020 * b32 + 0.015 * (flip and drop) - 0.002 * ls
    val = 0.020 * flip + 0.050 * b32 + 0.015 * (flip and drop) - 0.030 * ls
    return test, val


def _jitter(hp: dict, seed: int) -> float:
    """A configuration's own noise at a seed, fixed (so paired differences have spread), within ±0.004."""
    return (int(hashlib.sha1(config_key([hp, seed]).encode()).hexdigest()[:8], 16) % 801 - 400) / 100_000


class Store:
    """`RunStore.load` over crafted runs; `missing`: (configuration key, seed) not trained yet."""

    def __init__(self, missing: set | None = None):
        self.missing = missing or set()
        self.n_test: set = set()  # the test-set sizes asked for (a saved run of another size is not the run)

    def load(self, hp: dict, seed: int, n_test: int | None = None) -> Run | None:
        self.n_test.add(n_test)
        if (config_key(hp), seed) in self.missing:
            return None
        test, val = _effects(hp)
        shared = 0.01 * (seed % 3)  # a seed moves every configuration alike
        return Run(dict(hp), seed, {"val_accuracy": [0.6 + val + shared + _jitter(hp, -seed)]}, 10.0 + seed,
                   0.6 + test + shared + _jitter(hp, seed), 1.0, np.zeros(3, dtype=np.int64), "w",
                   reused_from="elsewhere" if hp == canonical(SOURCE) else None)


def canonical(hp: dict) -> dict:
    return ablation.canonical(hp, 64)


@pytest.fixture
def plan() -> ablation.Plan:
    report = ReportConfig(seed=2, seeds=5, batch_size=64, searches={"bayesian": {"seed": 1}})
    return ablation.Plan(report, SOURCE, TARGET, ablation.components(SOURCE, TARGET, (GROUP,)), SEEDS,
                         {"source": "baseline", "target": ""}, min_seeds=2)


def _test(hp: dict) -> np.ndarray:
    return np.array([Store().load(canonical(hp), s).test_accuracy for s in SEEDS])


def _with(start: dict, names, towards: dict) -> dict:
    return {**start, **{n: towards[n] for n in names}}


def test_components_are_the_differences_a_group_together_in_the_targets_order():
    got = ablation.components(SOURCE, TARGET, (GROUP,))
    assert got == {"dropout_1+dropout_2": GROUP, "batch_size": ("batch_size",), "augmentation": ("augmentation",),
                   "label_smoothing": ("label_smoothing",)}
    assert list(ablation.components(SOURCE, TARGET, ())) == ["dropout_1", "dropout_2", "batch_size", "augmentation",
                                                             "label_smoothing"]
    with pytest.raises(StudyError, match="the same configuration"):
        ablation.components(SOURCE, dict(SOURCE), ())
    with pytest.raises(StudyError, match="names dropout_1 twice"):
        ablation.components(SOURCE, TARGET, (("dropout_1", "dropout_1"),))
    with pytest.raises(StudyError, match="names batch_size twice"):
        ablation.components(SOURCE, TARGET, (("batch_size", "augmentation"), ("batch_size", "dropout_1")))
    with pytest.raises(StudyError, match="no hyperparameter named dropout_9"):
        ablation.components(SOURCE, TARGET, (("dropout_1", "dropout_9"),))
    with pytest.raises(StudyError, match="dropout_3 is the same"):
        ablation.components(SOURCE, TARGET, (("dropout_1", "dropout_3"),))


def test_the_seeds_follow_the_race_and_never_a_searchs():
    assert ablation._seeds(ReportConfig(seed=2, seeds=5, searches={"grid": {"seed": 1}}), 3) == (7, 8, 9)
    with pytest.raises(StudyError, match="seeds 7-9 include seed 8"):
        ablation._seeds(ReportConfig(seed=2, seeds=5, searches={"grid": {"seed": 8}}), 3)
    assert ablation._seeds(ReportConfig(seed=2, seeds=5, searches={"grid": {"seed": 10}}), 3) == (7, 8, 9)


def test_one_at_a_time_moves_each_component_from_either_end(plan):
    arms = ablation.one_at_a_time(plan)
    assert list(arms) == ["source", "target", "+dropout_1+dropout_2", "-dropout_1+dropout_2", "+batch_size",
                          "-batch_size", "+augmentation", "-augmentation", "+label_smoothing", "-label_smoothing"]
    assert arms["source"] == canonical(SOURCE) and arms["target"] == canonical(TARGET)
    assert arms["+dropout_1+dropout_2"] == canonical(_with(SOURCE, GROUP, TARGET))
    assert arms["-batch_size"] == canonical(_with(TARGET, ["batch_size"], SOURCE))
    assert "batch_size" not in arms["source"] and arms["+batch_size"]["batch_size"] == 32


def test_differences_interactions_and_holm_equal_scipys_and_statsmodels(plan):
    got = ablation.analyse(plan, Store(), ablation.path(plan, Store()))
    source, target = _test(SOURCE), _test(TARGET)
    total = scipy_stats.ttest_rel(target, source)
    assert got["total"]["mean"] == pytest.approx(np.mean(target - source))
    assert got["total"]["p_value"] == pytest.approx(total.pvalue) and got["total"]["beyond_noise"] is True
    low, high = total.confidence_interval()
    assert (got["total"]["ci_low"], got["total"]["ci_high"]) == (pytest.approx(low), pytest.approx(high))
    raw, interaction_raw = {}, {}
    for entry in got["one_at_a_time"]["added"]:
        names = plan.components[entry["component"]]
        plus, minus = _test(_with(SOURCE, names, TARGET)), _test(_with(TARGET, names, SOURCE))
        assert entry["diff_vs_source"]["mean"] == pytest.approx(np.mean(plus - source))
        raw[entry["component"]] = scipy_stats.ttest_rel(plus, source).pvalue
        assert entry["diff_vs_source"]["p_value"] == pytest.approx(raw[entry["component"]])
        inter = (plus - source) - (target - minus)
        assert entry["interaction"]["mean"] == pytest.approx(np.mean(inter))
        interaction_raw[entry["component"]] = scipy_stats.ttest_1samp(inter, 0).pvalue
        assert entry["interaction"]["p_value"] == pytest.approx(interaction_raw[entry["component"]])
        assert entry["test_accuracies"] == pytest.approx(list(plus)) and entry["seeds"] == list(SEEDS)
        assert entry["test_accuracy_std"] == pytest.approx(np.std(plus, ddof=1))
        assert entry["test_accuracy"] == pytest.approx(np.mean(plus))
        val = [Store().load(canonical(_with(SOURCE, names, TARGET)), s).final_val_accuracy for s in SEEDS]
        assert entry["val_accuracies"] == pytest.approx(val) and entry["val_accuracy"] == pytest.approx(np.mean(val))
        assert entry["val_accuracy_std"] == pytest.approx(np.std(val, ddof=1))
        assert entry["seconds"] == pytest.approx(np.mean([10.0 + s for s in SEEDS]))
    holm = multipletests(list(raw.values()), method="holm")[1]
    assert [e["diff_vs_source"]["p_holm"] for e in got["one_at_a_time"]["added"]] == pytest.approx(list(holm))
    holm = multipletests(list(interaction_raw.values()), method="holm")[1]
    assert [e["interaction"]["p_holm"] for e in got["one_at_a_time"]["added"]] == pytest.approx(list(holm))
    removed = {e["component"]: e for e in got["one_at_a_time"]["removed"]}
    minus = _test(_with(TARGET, ["augmentation"], SOURCE))
    assert removed["augmentation"]["diff_vs_target"]["mean"] == pytest.approx(np.mean(minus - target))
    assert removed["augmentation"]["diff_vs_target"]["mean"] < -0.04  # a component that helps: negative
    assert removed["augmentation"]["diff_vs_target"]["p_value"] == \
        pytest.approx(scipy_stats.ttest_rel(minus, target).pvalue)
    added = {e["component"]: e for e in got["one_at_a_time"]["added"]}
    assert added["dropout_1+dropout_2"]["interaction"]["mean"] == pytest.approx(-0.015, abs=0.004)  # helps with flips
    assert added["batch_size"]["interaction"]["mean"] == pytest.approx(0.0, abs=0.004)
    assert got["components"]["augmentation"] == {"augmentation": ["none", "flip"]}
    assert got["source"] == SOURCE and got["target"] == TARGET and got["seeds"] == list(SEEDS)
    assert got["source_arm"] == "baseline" and got["target_arm"] is None
    assert got["source_runs"]["test_accuracies"] == pytest.approx(list(source))
    assert got["target_runs"]["test_accuracies"] == pytest.approx(list(target))
    for side in ("added", "removed"):
        assert all(e["interaction"] == added_or_removed["interaction"] for e in got["one_at_a_time"][side]
                   for added_or_removed in [next(a for a in got["one_at_a_time"]["added"]
                                                 if a["component"] == e["component"])])
        assert [set(e["hyperparameters"]) == set(SOURCE) for e in got["one_at_a_time"][side]] == [True] * 4
    d = got["one_at_a_time"]["added"][0]["diff_vs_source"]
    assert (d["test"], d["pairs"], d["better"]) == ("paired t", 5, int(np.sum(
        _test(_with(SOURCE, GROUP, TARGET)) > source)))


def test_the_path_takes_the_best_change_on_validation_and_its_steps_add_up_to_the_total(plan):
    store = Store()
    got = ablation.analyse(plan, store, ablation.path(plan, store))
    steps = got["path"]
    # batch 32 helps most on validation (not on test: flips do); then flips, then the dropouts (with flips).
    assert [s["component"] for s in steps] == ["batch_size", "augmentation", "dropout_1+dropout_2", "label_smoothing"]
    assert steps[-1]["hyperparameters"] == TARGET and steps[0]["hyperparameters"]["batch_size"] == 32
    unraced = dataclasses.replace(plan, min_seeds=len(SEEDS))  # every candidate all seeds: the mean decides
    assert [c for c, _ in ablation.path(unraced, store).steps] == [s["component"] for s in steps]
    previous = _test(SOURCE)
    for s in steps:
        here = np.array(s["test_accuracies"])
        assert s["diff_vs_previous"]["mean"] == pytest.approx(np.mean(here - previous))
        assert s["diff_vs_source"]["mean"] == pytest.approx(np.mean(here - _test(SOURCE)))
        assert s["diff_vs_previous"]["p_value"] == pytest.approx(scipy_stats.ttest_rel(here, previous).pvalue)
        previous = here
    shares = [s["share_of_total"] for s in steps]
    assert sum(shares) == pytest.approx(1.0)
    assert shares[0] == pytest.approx(steps[0]["diff_vs_previous"]["mean"] / got["total"]["mean"])


def test_a_report_of_another_batch_size_keys_and_states_its_configurations_with_it():
    report = ReportConfig(seed=2, seeds=5, batch_size=32)
    source, target = {**SOURCE, "batch_size": 32}, {**SOURCE, "batch_size": 32, "augmentation": "flip"}
    p = ablation.Plan(report, source, target, ablation.components(source, target, ()), SEEDS, {"source": "", "target": ""})
    assert p.config(source) == canonical({**SOURCE, "batch_size": 64})  # batch 32 is what this report trains with
    got = ablation.analyse(p, Store(), ablation.path(p, Store()))
    assert got["one_at_a_time"]["added"][0]["hyperparameters"]["batch_size"] == 32
    assert got["one_at_a_time"]["removed"][0]["hyperparameters"]["batch_size"] == 32
    assert got["path"][0]["hyperparameters"]["batch_size"] == 32


def test_a_gain_within_the_noise_is_not_beyond_it_and_gets_no_shares(plan):
    noisy = {**SOURCE, "dropout_3": 0.2}  # no effect: the jitter alone gives it +0.1 points, p 0.57
    p = ablation.Plan(plan.report, SOURCE, noisy, ablation.components(SOURCE, noisy, ()), SEEDS, plan.names)
    got = ablation.analyse(p, Store(), ablation.path(p, Store()))
    assert 0 < got["total"]["mean"] < 0.004 and got["total"]["p_value"] > 0.05
    assert got["total"]["beyond_noise"] is False and got["path"][0]["share_of_total"] is None


def test_the_share_of_the_total_is_left_out_when_the_total_is_within_the_noise(plan, monkeypatch):
    flat = ablation.Plan(plan.report, SOURCE, _with(SOURCE, ["label_smoothing"], TARGET),
                         ablation.components(SOURCE, _with(SOURCE, ["label_smoothing"], TARGET), ()), SEEDS,
                         plan.names)
    got = ablation.analyse(flat, Store(), ablation.path(flat, Store()))
    assert got["total"]["beyond_noise"] is False and [s["share_of_total"] for s in got["path"]] == [None]


def test_a_missing_run_stops_the_path_at_the_decision_that_needs_it(plan):
    candidate = canonical(_with(_with(SOURCE, ["batch_size"], TARGET), ["augmentation"], TARGET))
    nothing_yet = {(config_key(canonical(_with(SOURCE, ["batch_size"], TARGET))), 8)}
    store = Store(nothing_yet)
    state = ablation.path(plan, store, n_test=3)
    assert state.steps == [] and state.todo == [(canonical(_with(SOURCE, ["batch_size"], TARGET)), 8)]
    assert len(state.raced) == 1 and store.n_test == {3}  # the race so far, on runs of the report's test set
    assert ablation.path(plan, Store()).todo == []
    state = ablation.path(plan, Store({(config_key(candidate), 9)}))
    assert [c for c, _ in state.steps] == ["batch_size"] and state.todo == [(candidate, 9)]
    store = Store({(config_key(candidate), 9), (config_key(candidate), 10)})
    todo = ablation.missing(store, {"a": candidate, "b": dict(candidate)}, SEEDS, n_test=3)
    assert todo == [(candidate, 9), (candidate, 10)] and store.n_test == {3}  # each run once, whichever arm names it


def test_racing_drops_a_clear_loser_of_a_later_step_and_the_count_says_what_it_saved(plan):
    state = ablation.path(plan, Store())
    second = state.raced[1][0]  # candidates after batch 32: flips, dropouts, label smoothing (two changes each)
    assert second.arms["label_smoothing"].dropped_after == 2 and second.arms["label_smoothing"].seeds == SEEDS[:2]
    assert second.arms["augmentation"].seeds == SEEDS and second.arms["augmentation"].dropped_after is None
    kept = [name for name, arm in second.arms.items() if arm.dropped_after is None]
    # What a real store holds: a dropped candidate's later seeds were never trained.
    never = {(config_key(state.raced[1][1][name]), s) for name, arm in second.arms.items() for s in SEEDS
             if s not in arm.seeds}
    store = Store(never)
    assert [c for c, _ in ablation.path(plan, store).steps] == [c for c, _ in state.steps]  # never read
    got = ablation.analyse(plan, store, state)["compute"]
    # Step 2's 3 candidates are new (step 1's and step 3's are the one-at-a-time configurations).
    new = 5 * len(kept) + 2 * (3 - len(kept))
    assert (got["path_new_retrainings"], got["path_new_retrainings_without_racing"]) == (new, 15)
    assert got["configurations"] == 10 + 3 and got["retrainings"] == 10 * 5 + new
    assert got["reused"] == 5  # the source's, reused from a report
    assert got["training_seconds"] == sum(store.load(hp, s).seconds for hp, s in _trained(plan, state))
    assert got["machines"] == []


def _trained(plan, state) -> list:
    """Every (configuration, seed) the ablation trained itself (not the reused source), each once."""
    configs = list(ablation.one_at_a_time(plan).values())
    jobs = {config_key([hp, s]): (hp, s) for hp in configs for s in SEEDS}
    for race, candidates in state.raced:
        for name, arm in race.arms.items():
            jobs.update({config_key([candidates[name], s]): (candidates[name], s) for s in arm.seeds})
    return [(hp, s) for hp, s in jobs.values() if hp != canonical(SOURCE)]


def _a_report(folder, recommended: str = "bayesian best", **report) -> str:
    """A report folder as `python -m study.report` leaves it, reduced to what the ablation reads."""
    import json

    folder.mkdir()
    cfg = ReportConfig(**{"seed": 2, "seeds": 5, "batch_size": 64, "searches": {"bayesian": {"seed": 1}}, **report})
    (folder / "config.json").write_text(json.dumps(cfg.to_dict()))
    base = {k: SOURCE[k] for k in ("optimizer", "learning_rate", "dropout_1", "dropout_2", "dropout_3")}
    arms = {"baseline": {"hyperparameters": base},
            "bayesian best": {"hyperparameters": {**base, "dropout_1": 0.1, "augmentation": "flip"}}}
    (folder / "metrics.json").write_text(json.dumps({"arms": arms, "recommendation": {"name": recommended}}))
    return str(folder)


def test_the_plan_goes_from_the_reports_baseline_to_its_recommendation_unless_told(tmp_path):
    folder = _a_report(tmp_path / "report")
    p = ablation.plan(ablation.AblationConfig(report=folder, output="out", seeds=3))
    assert p.source == SOURCE and p.names == {"source": "baseline", "target": "bayesian best"}
    assert p.target == {**SOURCE, "dropout_1": 0.1, "augmentation": "flip"}  # every value it trains with
    assert p.components == {"dropout_1": ("dropout_1",), "augmentation": ("augmentation",)} and p.seeds == (7, 8, 9)
    told = ablation.plan(ablation.AblationConfig(report=folder, output="out", source={"batch_size": 32},
                                                 target={"label_smoothing": 0.1}, min_seeds=3))
    assert told.source == {**SOURCE, "batch_size": 32} and told.target == {**SOURCE, "label_smoothing": 0.1}
    assert told.names == {"source": "", "target": ""} and told.min_seeds == 3 and told.seeds == (7, 8, 9, 10, 11)
    assert list(told.components) == ["batch_size", "label_smoothing"]  # the source's change goes back, too
    assert p.report.seeds == 5 and p.report.searches == {"bayesian": {"seed": 1}}  # the report's own settings
    own = json.loads((tmp_path / "report" / "metrics.json").read_text())  # a user's model: its own hyperparameter
    own["arms"]["baseline"]["hyperparameters"]["width"] = 32
    (tmp_path / "report" / "metrics.json").write_text(json.dumps(own))
    assert ablation.plan(ablation.AblationConfig(report=folder, output="o", target={"width": 64})).target["width"] == 64
    wide = ablation.plan(ablation.AblationConfig(report=_a_report(tmp_path / "b32", batch_size=32), output="o"))
    assert wide.source["batch_size"] == 32  # the report's own batch size is the baseline's


def test_the_plan_refuses_bad_input_in_one_line(tmp_path):
    folder = _a_report(tmp_path / "report")
    cases = [(dict(seeds=1), "--seeds must be >= 2"),
             (dict(target={"dropout_9": 0.1}), "--target: no hyperparameter named dropout_9"),
             (dict(source={"dropout_9": 0.1}), "--source: no hyperparameter named dropout_9"),
             (dict(groups=(("dropout_1", "dropout_9"),)), "--group dropout_1,dropout_9: no hyperparameter named "
                                                          "dropout_9 \\(choose from dropout_1, augmentation\\)"),
             (dict(groups=(("dropout_1", "optimizer"),)), "--group dropout_1,optimizer: optimizer is the same"),
             (dict(source={"optimizer": "adam"}, target={}), "the same configuration")]
    for flags, message in cases:
        with pytest.raises(StudyError, match=message):
            ablation.plan(ablation.AblationConfig(report=folder, output="out", **flags))
    assert ablation.plan(ablation.AblationConfig(report=folder, output="out", seeds=2)).seeds == (7, 8)  # the least
    kept = _a_report(tmp_path / "kept", recommended="baseline")
    with pytest.raises(StudyError, match="keeps the baseline: nothing to ablate towards; name one with --target"):
        ablation.plan(ablation.AblationConfig(report=kept, output="out"))
    assert ablation.plan(ablation.AblationConfig(report=kept, output="o", target={"batch_size": 32})).target[
        "batch_size"] == 32
    with pytest.raises(StudyError, match="no report there"):
        ablation.read_report(tmp_path / "nowhere")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "config.json").write_text("{")
    (tmp_path / "broken" / "metrics.json").write_text("{}")
    with pytest.raises(StudyError, match="unreadable"):
        ablation.read_report(tmp_path / "broken")


def _answer(shares: dict, added: dict, removed: dict, interactions: dict | None = None, beyond=True) -> str:
    """wording.ablation_answer on numbers reduced to what it reads: each difference as (mean, Holm's p)."""
    from study import wording

    def d(mean_p):
        return {"mean": mean_p[0], "p_value": mean_p[1], "p_holm": mean_p[1]}
    interactions = interactions or {}
    numbers = {"total": {"mean": 0.034, "ci_low": 0.024, "ci_high": 0.044, "beyond_noise": beyond},
               "one_at_a_time": {"added": [{"component": c, "diff_vs_source": d(added[c]),
                                            "interaction": d(interactions.get(c, (0.0, 0.6)))} for c in added],
                                 "removed": [{"component": c, "diff_vs_target": d(removed[c])} for c in added]},
               "path": [{"component": c, "share_of_total": shares[c]} for c in shares]}
    return wording.ablation_answer(numbers)


def test_the_answer_names_what_carries_the_gain_and_which_side_is_within_the_noise():
    shares = {"drop": 0.54, "aug": 0.22, "ls": 0.19, "batch": 0.05}
    added = {"drop": (0.018, 0.03), "batch": (0.004, 0.2), "aug": (0.013, 0.03), "ls": (0.015, 0.02)}
    removed = {"drop": (-0.021, 0.01), "batch": (-0.002, 0.4), "aug": (-0.009, 0.02), "ls": (-0.006, 0.3)}
    said = _answer(shares, added, removed)
    assert said == ("Most of the +3.4 points (+2.4 to +4.4) gain is drop: 54% of it on the path, +1.8 points added to "
                    "the source, -2.1 points removed from the target; aug (+1.3 points added to the source; -0.9 "
                    "points removed from the target) and ls (+1.5 points added to the source; -0.6 points removed "
                    "from the target, within the noise) also matter beyond the noise; batch adds nothing beyond the "
                    "noise, added or removed; no component interacts beyond the noise (Holm over the components).")
    assert _answer({**shares, "drop": 0.5}, added, removed).startswith("The largest part of the +3.4 points")
    mixed = _answer(shares, added, removed, interactions={"ls": (0.009, 0.04)})
    assert mixed.endswith("; ls interacts beyond the noise (it helps the source and the target unequally).")
    assert "within the noise: no component can carry" in _answer(shares, added, removed, beyond=False)
