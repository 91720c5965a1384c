"""Process-wide settings for the commands, applied before TensorFlow loads."""
from __future__ import annotations

import ctypes
import os

_M_ARENA_MAX = -8  # glibc's mallopt parameter number


def configure() -> None:
    """Quiet TensorFlow's C++ start-up logs; cap glibc's malloc arenas at 2.

    The input pipeline's threads each get a malloc arena by default, and freed batch buffers stay
    cached in them: with two arenas a full-data search peaks about 0.05-0.1 GB lower
    (benchmarks/README.md). Must run before any thread starts; elsewhere than glibc it does nothing.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if "MALLOC_ARENA_MAX" not in os.environ:  # the user's own setting wins
        _libc_call("mallopt", _M_ARENA_MAX, 2)


def release_freed_memory() -> None:
    """Give memory freed by Python back to the OS (glibc keeps many small freed blocks otherwise)."""
    _libc_call("malloc_trim", 0)


def _libc_call(name: str, *args: int) -> None:
    try:
        getattr(ctypes.CDLL("libc.so.6"), name)(*args)
    except (OSError, AttributeError):  # not glibc
        pass
