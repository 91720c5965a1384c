"""Progress on the console: each epoch's and trial's cost, and the time left of a search or a report.

A trial costs a fixed part (building, tracing, the first epoch's warm-up) and a part per epoch
(`study.tuners.EpochClock` splits them); the time left adds both over what is left (`seconds_left`). A report's
line says the same over its retrainings (`time_left_text`), never "about 0 min".
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np


class TrialCost(NamedTuple):
    """A finished trial's wall time, epochs trained, and seconds of those epochs net of warm-up."""

    seconds: float
    epochs: int
    in_epochs: float | None = None


def seconds_left(costs: list[TrialCost], budget_used: int, trials_left: int, budget_left: int) -> float | None:
    """Time left as a x trials left + b x epochs left, where a trial costs a + b x its epochs.

    b is measured inside the trials (epoch time net of warm-up), a is the rest of a trial's time;
    without those timings, a and b come from a line fitted through (epochs, seconds). The epochs
    left are the epoch budget left, scaled by the share of their budget that the finished trials
    actually trained (early stopping). None when nothing is known or left.
    """
    epochs = [c.epochs for c in costs]
    if trials_left <= 0 or not costs or not sum(epochs):
        return None
    if all(c.in_epochs is not None for c in costs):
        b = max(0.0, sum(c.in_epochs for c in costs)) / sum(epochs)
        a = sum(max(0.0, c.seconds - c.in_epochs) for c in costs) / len(costs)
    else:
        seconds = [c.seconds for c in costs]
        a, b = 0.0, sum(seconds) / sum(epochs)
        if len(set(epochs)) > 1:
            b, a = np.polyfit(epochs, seconds, 1)
            if a < 0 or b <= 0:  # noise: fall back to a mean cost per epoch
                a, b = 0.0, sum(seconds) / sum(epochs)
    epochs_left = max(0.0, budget_left * sum(epochs) / max(budget_used, 1))
    return float(trials_left * a + epochs_left * b)


def duration(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s" if m else f"{s}s"


def time_left_text(seconds: float, runs_left: int, ahead: int, live: str) -> str:
    """"; about 12 min left (at most 9 retrainings, 4 of 6 arms live)"; under a minute: "under a minute"; none: ""."""
    if not seconds or runs_left <= 0:
        return ""
    when = f"about {seconds / 60:.0f} min left" if seconds >= 60 else "under a minute left"
    detail = ", ".join(x for x in (f"at most {runs_left} retrainings" if ahead else "", live) if x)
    return f"; {when}" + (f" ({detail})" if detail else "")


def in_notebook() -> bool:
    """Whether this process is a Jupyter kernel (IPython with a kernel attached)."""
    import sys

    shell = getattr(sys.modules.get("IPython"), "get_ipython", lambda: None)()
    return shell is not None and getattr(shell, "kernel", None) is not None


class LiveLine:
    """One line in a notebook cell that each message replaces: the progress of a long command, not thousands of
    lines. A message with "[i/n]" or "i/n done" in it also fills a bar."""

    def __init__(self):
        from IPython.display import display

        self._handle = display({"text/plain": ""}, raw=True, display_id=True)

    def __call__(self, message: str) -> None:
        import html
        import re

        found = re.search(r"\[(\d+)/(\d+)\]|(\d+)/(\d+) done", message)
        bar = ""
        if found:
            done, total = (int(g) for g in (found.group(1) or found.group(3), found.group(2) or found.group(4)))
            filled = round(20 * done / max(total, 1))
            bar = f"[{'#' * filled}{'.' * (20 - filled)}] "
        text = bar + message.strip().splitlines()[0][:240]
        self._handle.update({"text/plain": text, "text/html": f"<pre>{html.escape(text)}</pre>"}, raw=True)


def live_log():
    """(log, Keras's verbose) for a command run from Python: one live line and no per-epoch lines in a notebook,
    every line printed elsewhere."""
    if in_notebook():
        return LiveLine(), 0
    return (lambda message: print(message, flush=True)), 2
