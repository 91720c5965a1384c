"""Where a round's jobs run: in this process, side by side in worker processes, or on a Dask cluster.

Wherever they run, each job is `study.retrain.run_job`, and its runs come back here to be saved
(`study.retrain.keep`): this process is the only writer of the output folder. Progress says each job as it
starts and each run as it is saved, with the time left.
"""
from __future__ import annotations

import time
from typing import TYPE_CHECKING

from study import arrays, devices, parallel, progress
from study.config import ReportConfig
from study.formats import epochs_text
from study.records import RunStore
from study.retrain import Job, Trained, job_in_worker, keep, pickled_model, run_job, start_worker

if TYPE_CHECKING:
    from study.model import ModelFunction


def trains_elsewhere(cfg: ReportConfig) -> int:
    """How many worker processes of this machine train side by side (`--parallel`, the GPU's default); 0 when this
    process trains itself, one run after another, or a Dask cluster does."""
    if cfg.scheduler:
        return 0
    width = devices.side_by_side(cfg.parallel, 1 << 20)
    return width if width > 1 else 0


def trains_here(cfg: ReportConfig) -> bool:
    """Whether this process trains the runs itself (and so needs the training images decoded)."""
    return not cfg.scheduler and not trains_elsewhere(cfg)


def run_jobs(data, store: RunStore, jobs: list[Job], cfg: ReportConfig, model: ModelFunction | None = None,
             log=print, verbose: int | str = 2, ahead: int = 0, live: str = "") -> None:
    """Train every job and save each run as soon as it ends; side by side in worker processes with `--parallel`.

    `ahead`: retrainings expected after these (the race's later rounds), counted in the time left;
    `live`: how many arms race ("4 of 6 arms live"), said on every progress line.
    """
    started, n, done = time.monotonic(), len(jobs), [0]
    connection = None
    if cfg.scheduler:
        from study import cluster

        connection = cluster.client(cfg)
        workers = cluster.workers(connection)
    else:
        workers = min(trains_elsewhere(cfg), n) or 1
    epochs = epochs_text(cfg.epochs)

    def starting(i: int, job: tuple[Job]) -> None:
        (job,) = job
        for j, (hp, seed) in enumerate(job.runs):
            values = ", ".join(f"{k}={v}" for k, v in hp.items())
            kept = job.kept_kind(j)
            what = (f"saved (on {kept}), trained again only on another kind of machine" if kept
                    else f"{epochs}{f', {live}' if live else ''}")
            log(f"[{i}/{n}] {'retraining' if not job.label else job.label} seed {seed}, {what}: {values}")

    def finished(i: int, job: tuple[Job], results: list[Trained]) -> None:
        done[0] += 1
        # Per job as it ran, `workers` at a time: the first jobs side by side end together, so time per
        # completion would count them k times over.
        left = (time.monotonic() - started) * min(workers, done[0]) / done[0] * (n - done[0] + ahead) / workers
        which = f"[{i}/{n}] " if workers > 1 else ""
        for trained in results:
            path = keep(store, trained)
            log(f"    {which}test accuracy {trained.run.test_accuracy:.4f} in {trained.run.seconds:.0f}s, saved as "
                f"{path}" + progress.time_left_text(left, n - done[0] + ahead, ahead, live))
        if not results:
            log(f"    {which}nothing to train: its saved runs pair on this machine")

    if connection is not None:
        log(f"retraining on the {workers} workers of the Dask scheduler at {cfg.scheduler} (--scheduler)")
        cluster.run_jobs(connection, jobs, cfg, model, starting, finished)
        return
    if trains_elsewhere(cfg):
        log(f"retraining {workers} at a time, side by side (--parallel)")
        # Each worker decodes the images itself (arrays in memory are sent): this process trains nothing.
        held = arrays.held(cfg.data.data_dir) if arrays.named(cfg.data.data_dir) else None
        parallel.run_side_by_side(job_in_worker, [(job,) for job in jobs], workers, initializer=start_worker,
                                  initargs=(cfg, pickled_model(model), held), started=starting, finished=finished)
        return
    for i, job in enumerate(jobs, 1):
        starting(i, (job,))
        finished(i, (job,), run_job(job, data, cfg, model, verbose))
