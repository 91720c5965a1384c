"""Retraining jobs on a Dask cluster (`--scheduler ADDRESS`): the command decides, the workers train, and send back.

A job (`study.retrain.Job`: one run, or a confirmation's pair) is one Dask task, run by the same
`study.retrain.run_job` as in the command's own process; its result, each run's record and weights, comes
back to the command, the only writer of the output folder (no shared filesystem). Each worker loads the
data once and keeps it; arrays in memory are scattered to the workers once. Dask runs a task again
elsewhere when its worker dies, so a pair is trained whole on one machine. Before anything is decoded,
every worker must run this very `study` (a hash of its source), Keras and TensorFlow, and read the data.
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
from collections.abc import Callable, Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

from study import arrays
from study.config import ReportConfig, StudyError, config_key

CONNECT_SECONDS = 10  # an unreachable scheduler is refused within this
_SOURCE = Path(__file__).resolve().parent


def fingerprint() -> dict[str, str | None]:
    """What decides the numbers, besides the machine: study's own source, and the versions of Keras and its backends."""
    digest = hashlib.sha1()
    for path in sorted(_SOURCE.glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    out: dict[str, str | None] = {"study": digest.hexdigest()[:16]}
    for package in ("keras", "tensorflow", "jax"):
        try:
            out[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            out[package] = None
    return out


def _readable(data_dir: str | None) -> str | None:
    """On a worker: None if it can read the data, else why not."""
    if data_dir is None or arrays.named(data_dir):
        return None
    path = Path(data_dir)
    if not path.exists():
        return f"no such file or directory {path} (from {os.getcwd()})"
    if not os.access(path, os.R_OK):
        return f"cannot read {path}"
    return None


_CLIENTS: dict[str, Any] = {}  # this process's client of each scheduler, connected once


def client(cfg: ReportConfig):
    """The client of `cfg.scheduler`, connected (and its workers checked) on first use."""
    if cfg.scheduler not in _CLIENTS:
        _CLIENTS[cfg.scheduler] = connect(cfg.scheduler, cfg)
    return _CLIENTS[cfg.scheduler]


def close() -> None:
    """Close every client this process opened (the cluster and its workers stay)."""
    while _CLIENTS:
        _CLIENTS.popitem()[1].close()


@contextlib.contextmanager
def session(cfg: ReportConfig) -> Iterator[None]:
    """Inside the block, `cfg.scheduler` (if any) is connected and its workers checked, before any image is
    decoded: an unreachable scheduler or a worker of another study is refused first; closed on leaving."""
    if not cfg.scheduler:
        yield
        return
    client(cfg)
    try:
        yield
    finally:
        close()


def connect(address: str, cfg: ReportConfig):
    """A client of the scheduler at `address`, its workers checked; StudyError (one line) if it cannot be used."""
    try:
        from distributed import Client
    except ImportError:
        raise StudyError("--scheduler needs Dask's distributed scheduler: pip install -e '.[distributed]'") from None
    try:
        connection = Client(address, timeout=CONNECT_SECONDS, set_as_default=False)
    except (OSError, TimeoutError, ValueError) as e:
        raise StudyError(f"--scheduler {address}: no Dask scheduler answered within {CONNECT_SECONDS} s "
                         f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else 'no answer'})") from None
    try:
        check_workers(connection, cfg, address)
    except BaseException:
        connection.close()
        raise
    return connection


def check_workers(connection, cfg: ReportConfig, address: str) -> None:
    """Refuse, by name, a worker that runs another study, Keras or TensorFlow, or cannot read the data."""
    known = connection.scheduler_info().get("workers", {})
    if not known:
        raise StudyError(f"--scheduler {address}: the cluster has no worker")
    mine = fingerprint()
    for worker, theirs in connection.run(fingerprint).items():
        differing = [k for k in mine if theirs.get(k) != mine[k]]
        if differing:
            what = ", ".join(f"{k} {theirs.get(k)} (here {mine[k]})" for k in differing)
            raise StudyError(f"--scheduler {address}: worker {worker} runs another {what}; its numbers would differ: "
                             "install the same study and versions there")
    for worker, why in connection.run(_readable, cfg.data.data_dir).items():
        if why:
            raise StudyError(f"--scheduler {address}: worker {worker} cannot read the data: {why} (a data path must "
                             "be readable on every worker)")


def workers(connection) -> int:
    """How many workers the cluster has now (at least 1)."""
    return max(1, len(connection.scheduler_info().get("workers", {})))


def run_jobs(connection, jobs: list, cfg: ReportConfig, model, started: Callable, finished: Callable) -> None:
    """Submit every job, call `finished(i, job, trained)` as each comes back, in whatever order.

    `started(i, job)` is called as all are submitted (the cluster decides when each runs).
    """
    from distributed import as_completed

    from study.retrain import pickled_model

    held = None
    if arrays.named(cfg.data.data_dir):  # once to every worker, not once a job
        held = connection.scatter(arrays.held(cfg.data.data_dir), broadcast=True, hash=False)
    blob = pickled_model(model)
    futures = {}
    for i, job in enumerate(jobs, 1):
        started(i, (job,))
        future = connection.submit(_job_on_worker, job, cfg, blob, held, pure=False,
                               key=f"study-{config_key([list(job.runs), i])[:40]}-{os.getpid()}-{i}")
        futures[future] = (i, job)
    for future in as_completed(list(futures), loop=connection.loop):
        i, job = futures[future]
        finished(i, (job,), future.result())


_KEPT: dict[str, Any] = {}  # in a worker process: the data of each data configuration it was asked for


def _job_on_worker(job, cfg: ReportConfig, model_blob: bytes | None, held) -> list:
    """A job on a Dask worker: its data loaded once per worker process, the runs named after the worker."""
    from distributed import get_worker

    from study import retrain, runtime
    from study.data import load_dataset

    runtime.configure()
    runtime.quiet_tensorflow()
    key = config_key(dataclasses.asdict(cfg.data))
    if key not in _KEPT:
        if held is not None:
            arrays.hold(cfg.data.data_dir, held)
        _KEPT.clear()  # one data set at a time: a worker of several reports holds only the latest
        _KEPT[key] = load_dataset(cfg.data, keep_test="encoded")
    if model_blob is not None:
        import cloudpickle

        model = cloudpickle.loads(model_blob)
    else:
        model = None
    trained = retrain.run_job(job, _KEPT[key], cfg, model, verbose=0)
    address = get_worker().address
    for t in trained:
        t.run.worker = address
    return trained
