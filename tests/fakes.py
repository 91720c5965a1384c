"""What the tests share: a retraining that trains nothing, and the check that bad input is one line and exit 2."""
from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

from study import runtime
from study.records import Run


def crafted_run(data, hyperparameters: dict, seed: int, cfg, accuracy: float, val_accuracy: float | None = None,
                initial_weights: str | None = None, environment: dict | None = None) -> Run:
    """A Run as `study.retrain.retrain` returns it, without training: the first `accuracy` of the test images right,
    trained on this machine (`environment`: another)."""
    n = len(data.y_test)
    y_pred = np.where(np.arange(n) < round(accuracy * n), data.y_test, (data.y_test + 1) % data.num_classes)
    val = accuracy if val_accuracy is None else val_accuracy
    history = {"loss": [1.0], "accuracy": [0.5], "val_loss": [1.0], "val_accuracy": [val]}
    return Run(dict(hyperparameters), seed, history, 1.0, float(np.mean(y_pred == data.y_test)), 1.0, y_pred,
               initial_weights or f"w{seed}", settings=cfg.settings(cfg.backend),
               environment=runtime.environment() if environment is None else environment)


def crafted(accuracies: Mapping | Callable | None = None, calls: list | None = None, default: float = 0.5) -> Callable:
    """`study.retrain.retrain` without training. Test and final validation accuracy of each run:
    `accuracies[(optimizer, seed)]` or `accuracies[optimizer][seed]`, a function of (hyperparameters, seed), or
    `default`; `calls` collects (optimizer, seed) of every run trained."""

    def accuracy(hp: dict, seed: int) -> float:
        if callable(accuracies):
            return accuracies(hp, seed)
        if accuracies is None:
            return default
        if (hp["optimizer"], seed) in accuracies:
            return accuracies[(hp["optimizer"], seed)]
        return accuracies.get(hp["optimizer"], {}).get(seed, default)

    def retrain(data, hyperparameters, seed, cfg, **kwargs):
        if calls is not None:
            calls.append((hyperparameters["optimizer"], seed))
        return crafted_run(data, hyperparameters, seed, cfg, accuracy(hyperparameters, seed))

    return retrain


def refused(capsys, main: Callable, argv: list[str], *needles: str) -> str:
    """Run `main(argv)`: it must exit with 2 and say why in one line on stderr, naming every one of `needles`."""
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    for needle in needles:
        assert needle in err, (needle, err)
    return err


def ablation_accuracy(hp: dict, seed: int) -> float:
    """An ablation's crafted accuracies on 20 test images: batch 32 +5 points, flips +10, label smoothing and the
    dropouts nothing; the seed moves every configuration alike (+5 points on odd seeds)."""
    return (0.45 + 0.05 * (hp.get("batch_size") == 32) + 0.10 * (hp.get("augmentation") == "flip")
            + 0.05 * (seed % 2))
