"""The confirmation: the challenger the race picked and the baseline, retrained on seeds of their own, decide.

The race's runs picked the challenger on validation, so they are lucky for it, and a run's validation and
test accuracy go together: its test accuracies on those runs are optimistic. The confirmation seeds come
right after the race's (`ReportConfig.confirmation_seeds`): no search and no race trained them. At each,
the baseline and the challenger are one job, trained on one machine, so a pair never mixes machine kinds
(which give other numbers); a saved half from another kind is trained again with its partner.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from study.records import Run, RunStore
from study.retrain import Job

LABEL = "confirmation"  # the progress line's name of a pair's runs


def pairs(store: RunStore, baseline: dict[str, Any], challenger: dict[str, Any], seeds: Sequence[int],
          n_test: int | None = None) -> tuple[list[Job], list[tuple[Run, Run]]]:
    """The pairs still to train (a job each), and the pairs saved, each of one machine kind, in seed order."""
    jobs, saved = [], []
    for seed in seeds:
        base, other = store.load(baseline, seed, n_test), store.load(challenger, seed, n_test)
        if base is not None and other is not None and base.machine == other.machine:
            saved.append((base, other))
            continue
        kept = tuple(run.machine if run is not None else None for run in (base, other))
        jobs.append(Job(((baseline, seed), (challenger, seed)), LABEL, kept))
    return jobs, saved


def runs(store: RunStore, baseline: dict[str, Any], challenger: dict[str, Any], seeds: Sequence[int],
         n_test: int | None = None) -> tuple[list[Run], list[Run]] | None:
    """(the baseline's runs, the challenger's runs) of the confirmation, in seed order; None while a pair is missing."""
    jobs, saved = pairs(store, baseline, challenger, seeds, n_test)
    if jobs:
        return None
    return [b for b, _ in saved], [c for _, c in saved]
