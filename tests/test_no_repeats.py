"""No configuration trained twice in a project, by any tuner: search wiring without training (run_trial scores)."""
from __future__ import annotations

import json

import keras_tuner
import pytest

from study import search, tuners
from study.results import run_order

OBJECTIVE = keras_tuner.Objective("val_accuracy", "max")


def _score(values) -> dict:
    return {"val_accuracy": values["a"] / 10 + (0.05 if values["b"] == "y" else 0.0)}


class _Bayesian(tuners.BayesianOptimization):
    def run_trial(self, trial, *args, **kwargs):
        return _score(trial.hyperparameters.values)


class _Hyperband(tuners.Hyperband):
    def run_trial(self, trial, *args, **kwargs):
        return _score(trial.hyperparameters.values)


def _space(a_values):
    def build(hp):
        hp.Choice("a", list(a_values), default=a_values[0])
        hp.Choice("b", ["x", "y"], default="x")

    return build


def _configs(tuner) -> list[tuple]:
    trials = sorted(tuner.oracle.trials.values(), key=lambda t: run_order(t.trial_id))
    return [(t.hyperparameters.values["a"], t.hyperparameters.values["b"]) for t in trials]


def _bayesian(tmp_path, a_values, max_trials, initial, seed=3):
    return _Bayesian(_space(a_values), objective=OBJECTIVE, max_trials=max_trials, num_initial_points=initial,
                     seed=seed, directory=str(tmp_path), project_name="b", log=lambda _: None)


def test_bayesian_never_proposes_a_configuration_twice_and_ends_when_the_space_is_exhausted(tmp_path):
    # 6 points, 10 trials allowed: the Gaussian process, fitted after 2 random trials, keeps landing on
    # the best point it knows (Keras Tuner would train it again and again: keras-team/keras-tuner#608).
    tuner = _bayesian(tmp_path, (1, 2, 3), max_trials=10, initial=2)
    tuner.search()
    configs = _configs(tuner)
    assert len(configs) == 6 and len(set(configs)) == 6
    assert {t.status for t in tuner.oracle.trials.values()} == {"COMPLETED"}
    assert "all 6 configurations of the search space have been tried" in tuner.oracle.exhausted


def test_random_sampling_goes_on_past_keras_tuners_20_collisions(tmp_path):
    # All random (40 initial points on a 40-point space): near the end, most draws collide, and Keras Tuner
    # alone stops after 20 in a row while untried points are left.
    tuner = _bayesian(tmp_path, tuple(range(1, 21)), max_trials=45, initial=45)
    tuner.search()
    configs = _configs(tuner)
    assert len(configs) == 40 and len(set(configs)) == 40
    assert tuner.oracle.exhausted


def test_resumed_search_takes_the_tried_set_from_the_trials_on_disk(tmp_path):
    tuner = _bayesian(tmp_path, (1, 2, 3), max_trials=4, initial=2)
    tuner.search()
    first = _configs(tuner)
    assert len(set(first)) == 4
    # An oracle.json that lost track of what was tried (written before its trials, or by another version).
    state_file = tmp_path / "b" / "oracle.json"
    state = json.loads(state_file.read_text())
    state["tried_so_far"] = []
    state_file.write_text(json.dumps(state))

    resumed = _bayesian(tmp_path, (1, 2, 3), max_trials=10, initial=2)
    resumed.search()
    configs = _configs(resumed)
    assert configs[:4] == first  # the trials on disk are kept, not re-run
    assert len(configs) == 6 and len(set(configs)) == 6
    assert resumed.oracle.exhausted


def test_hyperband_continues_a_configuration_but_never_starts_one_twice(tmp_path):
    tuner = _Hyperband(_space((1, 2, 3, 4)), objective=OBJECTIVE, max_epochs=3, factor=3, seed=2,
                       directory=str(tmp_path), project_name="h", log=lambda _: None)
    tuner.search()
    trials = list(tuner.oracle.trials.values())
    started = [(t.hyperparameters.values["a"], t.hyperparameters.values["b"]) for t in trials
               if "tuner/trial_id" not in t.hyperparameters.values]
    continued = [t for t in trials if "tuner/trial_id" in t.hyperparameters.values]
    assert len(started) == len(set(started)) >= 4
    assert continued  # a configuration's next round is a continuation, not a repeat
    assert tuner.oracle.exhausted is None


def test_hyperband_on_an_exhausted_space_stops_without_a_repeat(tmp_path):
    # 2 configurations, while the first bracket's first round asks for 3.
    tuner = _Hyperband(_space((1,)), objective=OBJECTIVE, max_epochs=3, factor=3, seed=2,
                       directory=str(tmp_path), project_name="h", log=lambda _: None)
    tuner.search()
    assert sorted(_configs(tuner)) == [(1, "x"), (1, "y")]
    assert "all 2 configurations" in tuner.oracle.exhausted


def test_an_exhausted_search_ends_with_one_line(tiny_data, tmp_path, capsys):
    argv = ["--tuner", "bayesian", "--data-dir", str(tiny_data), "--epochs", "1", "--directory", str(tmp_path),
            "--optimizers", "adam", "--learning-rates", "0.001,0.01", "--dropout1", "0.2", "--dropout2", "0.3",
            "--dropout3", "0.4", "--max-trials", "5", "--initial-points", "1"]
    assert search.main(argv) == 0
    out = capsys.readouterr().out
    assert out.count("configurations of the search space have been tried") == 1
    assert out.count("started:") == 2


@pytest.mark.parametrize("max_trials, says", [(None, False), (9, True)])
def test_a_grid_says_so_only_when_it_ends_before_max_trials(tmp_path, max_trials, says):
    class Grid(tuners.GridSearch):
        def run_trial(self, trial, *args, **kwargs):
            return _score(trial.hyperparameters.values)

    tuner = Grid(_space((1, 2)), objective=OBJECTIVE, max_trials=max_trials, directory=str(tmp_path),
                 project_name="g", log=lambda _: None)
    tuner.search()
    assert len(_configs(tuner)) == 4
    assert bool(tuner.oracle.exhausted) is says
