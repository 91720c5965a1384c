"""Process-wide settings for the commands, applied before TensorFlow loads."""
from __future__ import annotations

import contextlib
import ctypes
import os
import platform
import sys
from importlib import metadata

_M_ARENA_MAX = -8  # glibc's mallopt parameter number


def configure() -> None:
    """Quiet TensorFlow's C++ start-up logs; keep freed memory from piling up in the allocators.

    TensorFlow's tensors go to its own BFC allocator instead of glibc's malloc, and glibc gets at
    most 2 arenas: freed activations and batch buffers otherwise stay cached across glibc's
    per-thread arenas (0.03 and 0.05 GB less at the peak of a full-data search, same speed;
    benchmarks/README.md). Must run before TensorFlow loads and before any thread starts.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("TF_CPU_ALLOCATOR_USE_BFC", "true")
    if "MALLOC_ARENA_MAX" not in os.environ:  # the user's own setting wins
        _libc_call("mallopt", _M_ARENA_MAX, 2)


@contextlib.contextmanager
def without_notebook_modules(names: tuple[str, ...] = ("IPython", "matplotlib")):
    """Keep Keras from importing IPython and matplotlib, which only its notebook and plot helpers use.

    Keras imports both at start-up when they are installed (0.045 GB of a search's memory). Inside
    this block they cannot be imported (Keras falls back as if they were absent); afterwards they
    can again. Names already imported (a notebook) are left alone.
    """
    blocked = [name for name in names if name not in sys.modules]
    for name in blocked:
        sys.modules[name] = None  # "import name" now raises ImportError
    try:
        yield
    finally:
        for name in blocked:
            if sys.modules.get(name, "") is None:
                del sys.modules[name]


def release_freed_memory() -> None:
    """Give memory freed by Python back to the OS (glibc keeps many small freed blocks otherwise)."""
    _libc_call("malloc_trim", 0)


def _libc_call(name: str, *args: int) -> None:
    try:
        getattr(ctypes.CDLL("libc.so.6"), name)(*args)
    except (OSError, AttributeError):  # not glibc
        pass


def environment() -> dict[str, object]:
    """Where a result was computed: CPU model, cores, Python and the versions that decide the numbers.

    Recorded beside every trial and retraining, so a study that ran across several machines says
    which one computed what (CPU kinds differ 3x in speed between this project's machines).
    """
    versions = {}
    for package in ("tensorflow", "keras", "keras-tuner", "jax", "torch"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            pass
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "backend": os.environ.get("KERAS_BACKEND", "tensorflow"),
        **versions,
    }


def cpu_model() -> str:
    """The CPU's model name as `lscpu` prints it, with its family and model numbers.

    A virtual machine may show only "AMD EPYC"; family 23 is Zen 1/2, 25 Zen 3/4, 26 Zen 5.
    """
    fields = {}
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                key, _, value = line.partition(":")
                if not line.strip():
                    break  # the first processor is enough
                fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    name = fields.get("model name") or platform.processor() or platform.machine()
    if "cpu family" in fields and "model" in fields:
        name += f" (family {fields['cpu family']}, model {fields['model']})"
    return name
