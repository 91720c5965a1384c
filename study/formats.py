"""How the report writes its numbers: percentages, points, spreads and intervals, hyperparameters, durations.

Tables and sentences both use these, so a number reads the same everywhere, and every "±" says what it is.
"""
from __future__ import annotations

import math
from datetime import datetime, timezone
from typing import Any

SAME_CONFIGURATION = "same configuration"  # an arm with the baseline's configuration: no comparison


def data_text(d) -> str:
    """A `DataConfig` in a few words for the console: "../data.tar.gz, subset 2000, 32x32x3"."""
    return ", ".join([d.data_dir or "CIFAR-10 (keras.datasets)", *([f"subset {d.subset}"] if d.subset else []),
                      "x".join(map(str, d.image_size)) + f"x{d.channels}"])


def pct(x: float | None) -> str:
    """"69.5%"; empty for a missing number."""
    return f"{100 * x:.1f}%" if x is not None and math.isfinite(x) else ""


def points(x: float) -> str:
    """A difference of accuracies in percentage points, signed: "+2.7"."""
    return f"{100 * x:+.1f}"


def seeds_text(seeds: list[int] | tuple[int, ...] | range) -> str:
    """"seeds 2-6", "seeds 2, 4", "seed 7"."""
    seeds = list(seeds)
    if not seeds:
        return "no seeds"
    if len(seeds) == 1:
        return f"seed {seeds[0]}"
    if seeds == list(range(seeds[0], seeds[0] + len(seeds))):
        return f"seeds {seeds[0]}-{seeds[-1]}"
    return f"seeds {', '.join(map(str, seeds))}"


def count(n: int, what: str) -> str:
    """"1 trial", "2 trials"."""
    return f"{n} {what}{'' if n == 1 else 's'}"


def acc_text(s: dict[str, Any]) -> str:
    """Mean test accuracy ± its sd over seeds, for a table whose header says so: "69.5% ± 0.7"."""
    spread = f" ± {100 * s['test_accuracy_std']:.1f}" if is_finite(s.get("test_accuracy_std")) else ""
    return f"{pct(s['test_accuracy'])}{spread}"


def acc_prose(s: dict[str, Any]) -> str:
    """The same in a sentence, saying what the ± is: "69.5% ± 0.7 (sd over 5 seeds)", "68.5% (one seed)"."""
    n = len(s.get("seeds") or ())
    if is_finite(s.get("test_accuracy_std")):
        return f"{pct(s['test_accuracy'])} ± {100 * s['test_accuracy_std']:.1f} (sd over {n} seeds)"
    return f"{pct(s['test_accuracy'])} (one seed)"


def interval_text(s: dict[str, Any]) -> str:
    """"68.6% – 70.4%, t": a mean's 95% interval and how it was made (t over seeds, Wilson over test images)."""
    return f"{pct(s['ci_low'])} – {pct(s['ci_high'])}, {s['interval']}"


def diff_text(row: dict[str, Any]) -> str:
    """"+1.2 pts (−0.3 to +2.7)": a paired difference and its 95% interval; empty for the baseline itself."""
    if row.get("verdict") == SAME_CONFIGURATION:
        return SAME_CONFIGURATION
    if not row.get("test"):
        return ""
    if not is_finite(row.get("diff_ci_low")):
        return f"{points(row['diff_vs_baseline'])} pts (interval unknown)"
    return f"{points(row['diff_vs_baseline'])} pts ({points(row['diff_ci_low'])} to {points(row['diff_ci_high'])})"


def p_text(row: dict[str, Any]) -> str:
    """"0.045 (paired t; uncorrected 0.015)": Holm's p beside the test's own."""
    if not row.get("test"):
        return ""
    return f"{row['p_holm']:.2g} ({row['test']}; uncorrected {row['p_value']:.2g})"


def value_text(value: Any) -> str:
    """A hyperparameter's value: integers as integers (32, not 32.0), other numbers in their shortest form."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, float) and value.is_integer() and abs(value) >= 1:
        return str(int(value))
    return f"{value:g}"


def hp_text(hp: dict[str, Any]) -> str:
    """"adam, lr 0.001, dropout 0.2/0.3/0.4" for the notebook's CNN; a model's own hyperparameters as name=value."""
    text = f"{hp['optimizer']}, lr {value_text(hp['learning_rate'])}"
    dropouts = [f"dropout_{i}" for i in (1, 2, 3)]
    if all(d in hp for d in dropouts):
        text += f", dropout {'/'.join(value_text(hp[d]) for d in dropouts)}"
    others = [k for k in hp if k not in ("optimizer", "learning_rate", *dropouts)]
    return text + "".join(f", {k}={value_text(hp[k])}" for k in others)


def epochs_text(n: int) -> str:
    return count(n, "epoch")


def duration_text(seconds: float) -> str:
    """"45 s", "12 min", "2.6 h"; "–" for none."""
    if not seconds or not math.isfinite(seconds):
        return "–"
    minutes = seconds / 60
    return f"{minutes / 60:.1f} h" if minutes >= 90 else f"{minutes:.0f} min" if seconds >= 90 else f"{seconds:.0f} s"


def span_text(start: float | None, end: float | None) -> str:
    """From the first to the last of some wall-clock times, in UTC."""
    if not start or not end:
        return "not recorded"
    a, b = (datetime.fromtimestamp(t, timezone.utc) for t in (start, end))
    return f"{a:%Y-%m-%d %H:%M} – {b:%H:%M}" if a.date() == b.date() else f"{a:%Y-%m-%d %H:%M} – {b:%Y-%m-%d %H:%M}"


def date_text(when: float | None) -> str:
    return datetime.fromtimestamp(when, timezone.utc).strftime("%Y-%m-%d") if when else "an unknown date"


def is_finite(x: Any) -> bool:
    """A number that is there: not None (the JSON files write NaN as null), NaN or infinite."""
    return isinstance(x, (int, float)) and math.isfinite(x)
