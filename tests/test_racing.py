"""Racing: round by round, a clear loser on validation gets no more seeds, and every decision replays from saved runs.

The runs are stand-ins holding a validation accuracy: the race reads nothing else.
"""
from __future__ import annotations

import json
import math
from types import SimpleNamespace

import pandas as pd
import pytest

from study import racing, stats

ARMS = {"baseline": {"o": "adam"}, "sgd": {"o": "sgd"}, "rmsprop": {"o": "rmsprop"}, "grid best": {"o": "adam"}}
SEEDS = [1, 2, 3, 4, 5]


class Store:
    """Saved runs by (hyperparameters, seed); `trained` records what the race asked for, in order."""

    def __init__(self, val):
        self.val, self.runs, self.trained = val, {}, []

    def saved(self, hp, seed):
        return self.runs.get(json.dumps([hp, seed], sort_keys=True))

    def train(self, hp, seed):
        self.trained.append((hp["o"], seed))
        self.runs[json.dumps([hp, seed], sort_keys=True)] = SimpleNamespace(final_val_accuracy=self.val[hp["o"]][seed])


def _run_race(store, arms=ARMS, min_seeds=3, seeds=SEEDS, stop_after=None):
    """The report's loop: race, train the round's missing runs, race again; `stop_after` trainings: a crash."""
    for _ in range(len(seeds) + 1):  # a round per seed, and the last look: a race that never ends fails
        state = racing.race(arms, store.saved, seeds, min_seeds)
        for hp, seed in state.todo:
            if stop_after is not None and len(store.trained) == stop_after:
                return state
            store.train(hp, seed)
        if not state.todo:
            return state
    raise AssertionError(f"the race did not end after {len(seeds)} rounds: {state}")


VAL = {"adam": {s: 0.70 + 0.01 * (s % 2) for s in SEEDS},
       "sgd": {s: 0.55 + 0.01 * (s % 3) for s in SEEDS},  # 15 points worse: dropped after 3 seeds
       "rmsprop": {s: 0.73 + 0.01 * ((s + 1) % 2) for s in SEEDS}}  # 2 to 4 points better: never dropped


def test_a_clear_loser_is_dropped_after_min_seeds_and_every_live_arm_gets_seed_s_before_any_gets_s_plus_1():
    store = Store(VAL)
    state = _run_race(store)
    assert state.todo == [] and state.round == 5 and state.left == 0
    assert state.arms["sgd"] == racing.Arm((1, 2, 3), 3, racing.WORSE)
    assert state.arms["rmsprop"] == racing.Arm((1, 2, 3, 4, 5), None)
    assert state.arms["grid best"] == racing.Arm((1, 2, 3, 4, 5), None)  # the baseline's configuration: not compared
    assert state.live == ["baseline", "rmsprop", "grid best"] and state.live_text() == "3 of 4 arms live"
    # Round by round; the baseline's configuration trained once per seed although two arms have it.
    assert store.trained == [(o, s) for s in (1, 2, 3) for o in ("adam", "sgd", "rmsprop")] + \
        [(o, s) for s in (4, 5) for o in ("adam", "rmsprop")]
    assert state.saved == 13 == len(store.trained)


def test_min_seeds_at_the_number_of_seeds_turns_racing_off():
    store = Store(VAL)
    state = _run_race(store, min_seeds=5)
    assert all(arm == racing.Arm(tuple(SEEDS), None) for arm in state.arms.values())
    assert len(store.trained) == 15 and state.saved == 15


def test_a_race_killed_anywhere_and_rerun_makes_the_same_decisions():
    whole = Store(VAL)
    expected = _run_race(whole)
    for crash in (0, 2, 8, 9, 10, 12):  # at the start, within rounds 1 and 4, at the end of round 3 (the drop)
        store = Store(VAL)
        _run_race(store, stop_after=crash)
        assert _run_race(store) == expected and store.trained == whole.trained


def test_what_is_left_counts_this_round_and_the_later_rounds_of_the_live_arms():
    store = Store(VAL)
    state = racing.race(ARMS, store.saved, SEEDS, 3)
    assert state.round == 0 and state.left == 15 and state.saved == 0  # 3 configurations x 5 seeds, at most
    assert state.todo == [(ARMS["baseline"], 1), (ARMS["sgd"], 1), (ARMS["rmsprop"], 1)]
    assert state.arms["sgd"].seeds == (1,)  # running this round
    _run_race(store, stop_after=10)
    state = racing.race(ARMS, store.saved, SEEDS, 3)
    assert state.round == 3 and state.todo == [(ARMS["rmsprop"], 4)]  # sgd dropped: 4 left, not 6
    assert state.left == 3 and state.saved == 10 and state.arms["sgd"].dropped_after == 3


def test_runs_saved_beyond_the_race_change_no_decision():
    """Runs of a dropped arm's later seeds (from a fixed report in the same folder) are not used."""
    store = Store(VAL)
    for o in ("adam", "sgd", "rmsprop"):
        for s in SEEDS:
            store.train({"o": o}, s)
    state = racing.race(ARMS, store.saved, SEEDS, 3)
    assert state.todo == [] and state.arms["sgd"] == racing.Arm((1, 2, 3), 3, racing.WORSE) and state.saved == 13


def test_drops_are_worse_than_the_leader_beyond_the_noise_with_holm_over_the_arms_that_can_be_dropped():
    base = {1: 0.70, 2: 0.70, 3: 0.70}
    worse = {1: 0.68, 2: 0.66, 3: 0.67}  # -2, -4, -3 points: with two arms the paired t-test, p = 0.035
    assert stats.compare_to_leader({"baseline": base, "w": worse})[1]["w"].p_value == pytest.approx(0.0351, abs=1e-4)
    arms = {"baseline": {"o": 0}, "w": {"o": 1}, "n": {"o": 2}, "b": {"o": 3}, "v": {"o": 4}}
    assert racing.drops({"baseline": base, "w": worse}, arms, 5) == {"w": racing.WORSE}
    # Holm over the two arms that can be dropped: w's p doubled is not below 0.05 any more (n, as good as the
    # baseline on average but spread by 5 points, also widens the pooled noise). w still cannot beat the baseline.
    noise = {1: 0.725, 2: 0.675, 3: 0.70}
    _, pooled = stats.compare_to_leader({"baseline": base, "w": worse, "n": noise})
    assert pooled["w"].p_value < 0.05 < 2 * pooled["w"].p_value
    assert racing.drops({"baseline": base, "w": worse, "n": noise}, arms, 10) == {"w": racing.CANNOT_BEAT}
    # The leader need not be the baseline: an arm as good as the baseline but worse than a clear leader is
    # dropped; the baseline, as much worse, never is.
    better = {1: 0.74, 2: 0.75, 3: 0.76}
    level = {1: 0.705, 2: 0.695, 3: 0.70}
    _, by_leader = stats.compare_to_leader({"baseline": base, "b": better, "v": level})
    assert by_leader["baseline"].p_value < 0.05 and 2 * by_leader["v"].p_value < 0.05
    assert racing.drops({"baseline": base, "b": better, "v": level}, arms, 5) == {"v": racing.WORSE}
    assert racing.drops({"baseline": base, "b": better}, arms, 5) == {}
    # The baseline's configuration under another name: one arm with the baseline, never dropped.
    assert racing.drops({"baseline": base, "same": worse}, {**arms, "same": {"o": 0}}, 5) == {}
    assert racing.drops({"baseline": base}, arms, 5) == {}
    # Two arms with one configuration (in any key order) are one arm: dropped together, and weighed once.
    twin = {**arms, "w": {"o": 1, "p": 2}, "w2": {"p": 2, "o": 1}}
    assert racing.drops({"baseline": base, "w": worse, "w2": worse}, twin, 5) == {"w": racing.WORSE,
                                                                                  "w2": racing.WORSE}
    # An arm with the baseline's configuration stands for nothing: the baseline does, whatever the names' order.
    alias = {**arms, "alias": {"o": 0}}
    assert racing.drops({"baseline": base, "alias": base, "b": better}, alias, 5) == {}
    assert racing.drops({"alias": base, "baseline": base, "b": better}, alias, 5) == {}
    alias = {**arms, "baseline": {"p": 0, "o": 0}, "alias": {"o": 0, "p": 0}}  # in another key order
    assert racing.drops({"baseline": base, "alias": base, "b": better}, alias, 5) == {}


def test_an_arm_that_cannot_beat_the_baseline_even_with_every_seed_is_dropped():
    """Two arms: the pooled model is the paired t-test, so the bound and the gain needed are its own numbers."""
    from scipy.stats import t

    base = {1: 0.70, 2: 0.72, 3: 0.71}
    level = {1: 0.68, 2: 0.71, 3: 0.71}  # -2, -1, 0 points: mean -1, spread 1 point
    bound = -0.01 + t.ppf(0.95, 2) * 0.01 / math.sqrt(3)  # +0.7 points: the paired one-sided 95% upper bound
    needed = {k: t.ppf(0.975, k - 1) * 0.01 / math.sqrt(k) for k in (3, 5, 50)}  # 1.4, 1.2 and 0.3 points
    assert stats.cannot_beat({"baseline": base, "l": level}, "baseline", 5) == {"l": pytest.approx(bound, rel=1e-9)}
    assert bound < needed[3] and stats.cannot_beat({"baseline": base, "l": level}, "baseline", 3) == \
        {"l": pytest.approx(bound, rel=1e-9)}
    assert bound > needed[50] and stats.cannot_beat({"baseline": base, "l": level}, "baseline", 50) == {}
    # One point better on average, the same spread: its bound is above the gain 5 seeds find, it races on.
    up = {s: v + 0.02 for s, v in level.items()}
    assert stats.cannot_beat({"baseline": base, "u": up}, "baseline", 5) == {}
    # Beside u, l is also worse than the leader beyond the noise: the stronger reason is the one given.
    assert racing.drops({"baseline": base, "l": level, "u": up}, {"baseline": 0, "l": 1, "u": 2}, 5) == \
        {"l": racing.WORSE}
    # The same gain in every seed leaves no spread: that is not certainty, nothing is dropped.
    flat = {s: v - 0.01 for s, v in base.items()}
    assert stats.cannot_beat({"baseline": base, "f": flat}, "baseline", 5) == {}
    # Against the baseline, not the leader: an arm level with the baseline is dropped, whoever leads.
    assert stats.cannot_beat({"best": up, "l": level, "baseline": base}, "baseline", 5) == \
        {"l": pytest.approx(stats.cannot_beat({"baseline": base, "l": level, "best": up}, "baseline", 5)["l"])}


@pytest.mark.parametrize("most_seeds", [3, 5])
def test_the_gain_needed_is_the_one_a_paired_test_on_every_seed_finds_half_the_time(most_seeds):
    """An arm whose bound is a hair above the gain needed races on; a hair below, it is dropped."""
    from scipy.stats import t

    base = {1: 0.70, 2: 0.72, 3: 0.71}
    spread = 0.01  # the differences' standard deviation: d - 1, d, d + 1 points
    needed = t.ppf(0.975, most_seeds - 1) * spread / math.sqrt(most_seeds)
    for hair, dropped in ((1e-3, False), (-1e-3, True)):
        mean = needed * (1 + hair) - t.ppf(0.95, 2) * spread / math.sqrt(3)  # the bound: needed x (1 + hair)
        arm = {s: base[s] + mean + spread * (s - 2) for s in base}
        assert (stats.cannot_beat({"baseline": base, "a": arm}, "baseline", most_seeds) != {}) is dropped, hair


def test_two_seeds_of_several_arms_drop_a_loser_that_its_own_paired_test_could_not():
    val = {"baseline": {1: 0.540, 2: 0.544}, "sgd": {1: 0.259, 2: 0.271}, "a": {1: 0.516, 2: 0.529},
           "b": {1: 0.516, 2: 0.536}, "c": {1: 0.510, 2: 0.504}}
    arms = {name: {"o": i} for i, name in enumerate(val)}
    # c: 3 and 4 points worse. Its own paired t-test has 1 degree of freedom (p 0.09); pooled over the 5 arms, 4.
    # a and b, 1 to 2.5 points behind, are not worse beyond the noise, but cannot beat the baseline in 3 seeds.
    assert stats.compare_paired_seeds(val["baseline"], val["c"]).p_value > 0.05
    assert racing.drops(val, arms, 3) == {"sgd": racing.WORSE, "a": racing.CANNOT_BEAT, "b": racing.CANNOT_BEAT,
                                          "c": racing.WORSE}
    store = Store({i: {s: val[name][(s - 1) % 2 + 1] for s in SEEDS} for i, name in enumerate(val)})
    state = _run_race(store, arms=arms, min_seeds=2, seeds=[1, 2, 3])
    assert state.arms["sgd"] == racing.Arm((1, 2), 2, racing.WORSE)
    assert state.arms["c"] == racing.Arm((1, 2), 2, racing.WORSE)
    assert state.arms["a"] == racing.Arm((1, 2), 2, racing.CANNOT_BEAT)
    # Every challenger dropped: nothing is left to beat the baseline, which gets no seed 3.
    assert state.arms["baseline"] == racing.Arm((1, 2)) and state.saved == 2 + 4 * 2 == len(store.trained)
    assert state.todo == [] and state.left == 0 and state.round == 2


def _search(name, rows):
    trials = pd.DataFrame([{"trial_id": f"{i:02d}", "status": "COMPLETED", "val_accuracy": v, "optimizer": o,
                            "learning_rate": lr} for i, (o, lr, v) in enumerate(rows)])
    return SimpleNamespace(name=name, trials=trials)


def test_candidates_are_the_best_distinct_configurations_of_all_searches():
    grid = _search("grid", [("adam", 1e-3, 0.80), ("sgd", 0.01, 0.60), ("adam", 1e-4, 0.70)])
    hyperband = _search("hyperband", [("rmsprop", 1e-3, 0.60), ("rmsprop", 1e-3, 0.75),  # a later round: its best
                                      ("adam", 1e-4, 0.65), ("sgd", 0.1, 0.72)])
    taken = [{"optimizer": "adam", "learning_rate": 1e-3}]  # the baseline: always in, not a candidate
    field = racing.candidates([grid, hyperband], 3, taken, 64)
    assert field == {"hyperband best": {"optimizer": "rmsprop", "learning_rate": 1e-3},
                     "hyperband #2": {"optimizer": "sgd", "learning_rate": 0.1},
                     "grid #2 = hyperband #3": {"optimizer": "adam", "learning_rate": 1e-4}}
    assert list(racing.candidates([grid, hyperband], 1, taken, 64)) == ["hyperband best"]
    assert len(racing.candidates([grid, hyperband], 10, taken, 64)) == 4  # every distinct one there is


def test_the_baseline_can_have_another_name():
    arms = {"adam": {"o": "adam"}, "sgd": {"o": "sgd"}}
    store = Store(VAL)
    for _ in range(6):
        state = racing.race(arms, store.saved, SEEDS, 3, baseline="adam")
        for hp, seed in state.todo:
            store.train(hp, seed)
    # The only challenger dropped: the baseline, named "adam" here, gets no more seeds either.
    assert state.todo == [] and state.arms["sgd"].dropped_after == 3 and state.arms["adam"].seeds == tuple(SEEDS[:3])


def test_runs_saved_for_later_rounds_count_as_saved():
    """Copied in from a fixed report, say: a round's missing run is all that is left."""
    store = Store(VAL)
    for o in ("adam", "sgd", "rmsprop"):
        for s in SEEDS:
            if (o, s) != ("rmsprop", 4):
                store.train({"o": o}, s)
    state = racing.race(ARMS, store.saved, SEEDS, 3)
    assert state.todo == [(ARMS["rmsprop"], 4)] and (state.saved, state.left) == (12, 1)
    state = racing.race(ARMS, store.saved, SEEDS, 5)
    assert state.todo == [(ARMS["rmsprop"], 4)] and (state.saved, state.left) == (14, 1)


def test_candidates_read_completed_trials_at_the_report_batch_size_in_trial_order():
    def search(name, rows, **extra):
        trials = pd.DataFrame([{"trial_id": i, "status": st, "val_accuracy": v, "optimizer": o, "units": 64,
                                "batch_norm": True, **extra} for i, st, o, v in rows])
        return SimpleNamespace(name=name, trials=trials)

    a = search("a", [("9", "COMPLETED", "adam", 0.7), ("10", "COMPLETED", "sgd", 0.7),  # a tie: trial 9 first
                     ("11", "RUNNING", "nadam", 0.99), ("12", "COMPLETED", "ftrl", float("nan"))], batch_size=64)
    b = search("b", [("0", "COMPLETED", "sgd", 0.9)], batch_size=64)
    field = racing.candidates([a, b], 5, [], 64)
    # The batch size the report trains with is no hyperparameter of its own; ints and booleans stay what they were.
    assert field == {"a #2 = b best": {"optimizer": "sgd", "units": 64, "batch_norm": True},  # at b's 0.9
                     "a best": {"optimizer": "adam", "units": 64, "batch_norm": True}}
    assert list(field) == ["a #2 = b best", "a best"]  # ranked by the best score anywhere
    assert [type(v) for v in field["a best"].values()] == [str, int, bool]
    assert racing.candidates([a], 5, [], 32)["a best"]["batch_size"] == 64


def test_two_arms_with_one_configuration_in_another_key_order_share_their_runs():
    arms = {"baseline": {"o": "adam", "p": 1}, "same": {"p": 1, "o": "adam"}, "sgd": {"o": "sgd", "p": 1}}
    state = racing.race(arms, lambda hp, seed: None, SEEDS, 3)
    assert state.todo == [(arms["baseline"], 1), (arms["sgd"], 1)] and state.left == 10



def test_a_configurations_search_score_is_its_best_in_any_search():
    grid = _search("grid", [("adam", 1e-3, 0.80), ("sgd", 0.01, 0.60)])
    hyperband = _search("hyperband", [("sgd", 0.01, 0.62), ("sgd", 0.01, 0.70), ("adam", 1e-4, 0.5)])
    assert racing.search_score({"optimizer": "sgd", "learning_rate": 0.01}, [grid, hyperband], 64) == 0.70
    assert racing.search_score({"optimizer": "adam", "learning_rate": 1e-3}, [grid, hyperband], 64) == 0.80
    assert math.isnan(racing.search_score({"optimizer": "ftrl", "learning_rate": 1e-3}, [grid, hyperband], 64))
    # At the report's batch size, a trial that names it is the configuration that does not.
    sized = _search("sized", [("adam", 1e-3, 0.9)])
    sized.trials["batch_size"] = 64
    assert racing.search_score({"optimizer": "adam", "learning_rate": 1e-3}, [sized], 64) == 0.9


def test_an_arm_level_with_the_baseline_is_dropped_as_it_cannot_beat_it_and_a_rerun_makes_the_same_decisions():
    val = {**VAL, "nadam": {s: VAL["adam"][s] + 0.002 * (s % 3 - 1) for s in SEEDS}}  # within 0.2 points
    arms = {"baseline": {"o": "adam"}, "sgd": {"o": "sgd"}, "nadam": {"o": "nadam"}}
    whole = Store(val)
    expected = _run_race(whole, arms=arms)
    assert expected.arms["nadam"] == racing.Arm((1, 2, 3), 3, racing.CANNOT_BEAT)  # not worse, but no better
    assert expected.arms["sgd"] == racing.Arm((1, 2, 3), 3, racing.WORSE)
    # Both dropped after 3 seeds: the baseline trains no seed 4 or 5 on its own.
    assert expected.arms["baseline"] == racing.Arm(tuple(SEEDS[:3])) and whole.trained[-3:] == \
        [("adam", 3), ("sgd", 3), ("nadam", 3)]
    for crash in (5, 7, 8):
        store = Store(val)
        _run_race(store, arms=arms, stop_after=crash)
        assert _run_race(store, arms=arms) == expected and store.trained == whole.trained
