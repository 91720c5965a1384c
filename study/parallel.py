"""Jobs side by side in worker processes: the report's retrainings sharing one GPU.

One training of the notebook's CNN leaves a GPU mostly idle (per-step overhead, `study.devices`);
several processes, each training whole runs, fill it. A job runs in a worker exactly as it would in
the calling process (the same function on the same arguments, seeded inside), so running side by
side changes when results arrive, not what they are.
"""
from __future__ import annotations

import concurrent.futures
import ctypes
import multiprocessing
import signal
from collections.abc import Callable, Iterable
from typing import Any

from study import runtime

_PR_SET_PDEATHSIG = 1  # Linux prctl option


def run_side_by_side(task: Callable, jobs: Iterable[tuple], workers: int, *, initializer: Callable,
                     initargs: tuple, started: Callable[[int, tuple], None],
                     finished: Callable[[int, tuple, Any], None]) -> None:
    """`task(*job)` for every job, in `workers` fresh processes, at most `workers` at a time, in job order.

    `initializer(*initargs)` runs once in each worker (load what every job needs); `task` and
    `initializer` must be importable module-level functions. `started(i, job)` is called as job i
    (from 1) is handed to a worker, `finished(i, job, result)` as it ends, both in this process. The
    first job that raises stops the rest: jobs not started are dropped, the exception propagates.
    """
    # Spawned, not forked: a forked copy of a process whose GPU backend is initialised does not work.
    context = multiprocessing.get_context("spawn")
    queue = list(enumerate(jobs, 1))
    with concurrent.futures.ProcessPoolExecutor(workers, mp_context=context, initializer=_start_worker,
                                                initargs=(initializer, initargs)) as pool:
        running: dict[concurrent.futures.Future, tuple[int, tuple]] = {}
        try:
            while queue or running:
                while queue and len(running) < workers:
                    i, job = queue.pop(0)
                    started(i, job)
                    running[pool.submit(task, *job)] = (i, job)
                done, _ = concurrent.futures.wait(running, return_when=concurrent.futures.FIRST_COMPLETED)
                for future in sorted(done, key=lambda f: running[f][0]):
                    i, job = running.pop(future)
                    finished(i, job, future.result())
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)  # the jobs already running end and keep their results
            raise


def die_with_parent() -> None:
    """Have the kernel SIGKILL this process when its parent dies, even by a SIGKILL (Linux; elsewhere nothing).

    A process started for a command (a worker) must not outlive it.
    """
    try:
        ctypes.CDLL("libc.so.6").prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # not Linux
        pass


def _start_worker(initializer: Callable, initargs: tuple) -> None:
    die_with_parent()
    runtime.configure()
    runtime.quiet_tensorflow()
    initializer(*initargs)
