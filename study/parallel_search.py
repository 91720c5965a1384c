"""`python -m study.search --parallel K`: K trials at once on this machine, through Keras Tuner's chief/worker mode.

The command starts a chief (it serves the oracle on 127.0.0.1 and trains nothing) and K workers,
each a `python -m study.search` with the command's own arguments and its KERASTUNER_* variables,
and stops them all:
- each child asks the kernel to kill it when the command dies (`parallel.die_with_parent`), so a
  SIGKILL of the command leaves no process behind; Ctrl-C reaches the command alone, which
  interrupts its children and waits for them (a trial cut short is re-run on the next start);
- the command holds the project's lock for them (`study.locks`): they take none of their own;
- a trial trains exactly as in one process (its seed's initial weights and data order), so K
  changes when results arrive, not what they are, and rerunning resumes like any search.
Each line a child prints is passed on with its name in front (`[chief]`, `[worker 0]`...), once.
"""
from __future__ import annotations

import os
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time

from study import locks
from study.config import SearchConfig, StudyError

PROG = "python -m study.search"
TRIALS_AT_ONCE = "STUDY_TRIALS_AT_ONCE"  # set for the children: the progress lines' time left is shared among them
_STOP_SECONDS = 15  # how long interrupted children get to save their state before they are killed


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(cfg: SearchConfig, workers: int, command: str, log=print) -> int:
    """Run the search in a chief and `workers` workers; their worst exit status (0 when all went well)."""
    argv = shlex.split(command)[len(PROG.split()):]  # --parallel is among them: the children ignore it
    port = free_port()
    log(f"{workers} trials at once: a chief on 127.0.0.1:{port} and {workers} workers "
        f"(tuner0..tuner{workers - 1})")
    children: list[tuple[str, subprocess.Popen]] = []
    try:
        children.append(("chief", _start(argv, port, "chief", workers)))
        for i in range(workers):
            children.append((f"worker {i}", _start(argv, port, f"tuner{i}", workers)))
        seen, lock = set(), threading.Lock()
        readers = [threading.Thread(target=_forward, args=(name, proc, seen, lock), daemon=True)
                   for name, proc in children]
        for reader in readers:
            reader.start()
        status = _wait(children)
        for reader in readers:
            reader.join(timeout=5)
        return status
    except BaseException:
        _stop(children)
        raise


def _start(argv: list[str], port: int, tuner_id: str, workers: int) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KERASTUNER_")}
    env.update(KERASTUNER_ORACLE_IP="127.0.0.1", KERASTUNER_ORACLE_PORT=str(port), KERASTUNER_TUNER_ID=tuner_id,
               PYTHONUNBUFFERED="1")
    env[locks.HELD_BY_PARENT] = str(os.getpid())
    env[TRIALS_AT_ONCE] = str(workers)
    try:
        # A session of its own: a Ctrl-C in the terminal reaches the command, which stops the children in order.
        return subprocess.Popen([sys.executable, "-m", "study.search", *argv], stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, text=True,
                                start_new_session=True)  # fmt: skip
    except OSError as e:
        raise StudyError(f"cannot start a worker process: {e.strerror}") from None


def _forward(name: str, proc: subprocess.Popen, seen: set[str], lock: threading.Lock) -> None:
    for line in proc.stdout:
        with lock:
            # What every child says alike (the data, the project, the settings) is passed on once.
            if line in seen:
                continue
            seen.add(line)
            sys.stdout.write(f"[{name}] {line}")
            sys.stdout.flush()


def _wait(children: list[tuple[str, subprocess.Popen]]) -> int:
    """Until every child has ended; the first that fails stops the others (a worker alone would wait forever)."""
    workers_done = None
    while True:
        codes = {name: proc.poll() for name, proc in children}
        failed = [(name, code) for name, code in codes.items() if code not in (None, 0)]
        if failed:
            _stop(children)
            name, code = failed[0]
            print(f"{PROG}: the {name} process ended with status {code}; the others were stopped", file=sys.stderr)
            return code if code > 0 else 1
        if all(code == 0 for code in codes.values()):
            return 0
        if workers_done is None and all(code == 0 for name, code in codes.items() if name != "chief"):
            workers_done = time.monotonic()
        if workers_done is not None and time.monotonic() - workers_done > 60:  # every trial is done: not waited on
            _stop(children)
            return 0
        time.sleep(0.2)


def _stop(children: list[tuple[str, subprocess.Popen]]) -> None:
    """Interrupt the children still running (each saves what it can), then kill what is left."""
    running = [proc for _, proc in children if proc.poll() is None]
    for proc in running:
        proc.send_signal(signal.SIGINT)
    deadline = time.monotonic() + _STOP_SECONDS
    for proc in running:
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
