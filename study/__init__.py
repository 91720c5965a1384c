"""study: hyperparameter studies of Keras image classifiers, built on Keras Tuner, from Python or the command line.

    import study
    data = study.load_data("../shared/data/cifar10-jpeg.tar.gz", subset=2000)
    s = study.Study(data, directory="tuner_results", output="reports")
    grid = s.search(tuner="grid", epochs=2)
    rep = s.report(epochs=2, seeds=3)

The names load on first use: `python -m study.search --help` imports none of them.
"""
from __future__ import annotations

import importlib

_WHERE = {"Study": "study.api", "SearchResult": "study.api", "Report": "study.api", "Ablation": "study.api",
          "load_data": "study.api", "from_arrays": "study.arrays", "StudyError": "study.config"}
__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module 'study' has no attribute {name!r}")
    return getattr(importlib.import_module(_WHERE[name]), name)


def __dir__() -> list[str]:
    return [*globals(), *__all__]
