"""Process-wide settings for the commands, applied before TensorFlow loads."""
from __future__ import annotations

import contextlib
import ctypes
import functools
import importlib.abc
import importlib.util
import json
import logging
import os
import platform
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from importlib import metadata

_M_ARENA_MAX = -8  # glibc's mallopt parameter number


def configure() -> None:
    """Quiet TensorFlow's C++ start-up logs; keep freed memory from piling up in the allocators; share a GPU.

    TensorFlow's tensors go to its own BFC allocator instead of glibc's malloc, and glibc gets at
    most 2 arenas: freed activations and batch buffers otherwise stay cached across glibc's
    per-thread arenas (0.03 and 0.05 GB less at the peak of a full-data search, same speed;
    benchmarks/README.md). Must run before TensorFlow loads and before any thread starts.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("TF_CPU_ALLOCATOR_USE_BFC", "true")
    # On a GPU, TensorFlow and JAX would each take most of its memory at start-up, and a second process
    # (the report's retrainings side by side, several workers of a search) could not start. Only GPU
    # allocators read these: nothing changes on a CPU.
    os.environ.setdefault("TF_FORCE_GPU_ALLOW_GROWTH", "true")
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    # JAX compiles the steps of every new model anew, 15-20 s on 2 CPU cores: kept on disk, they are reused by
    # every model whose steps are the same computation (another learning rate or seed, a resumed trial, the
    # next command). Only JAX reads it; an empty value turns it off.
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", os.path.join(cache, "study", "jax"))
    if "MALLOC_ARENA_MAX" not in os.environ:  # the user's own setting wins
        _libc_call("mallopt", _M_ARENA_MAX, 2)


def _cc_log(level: str, source: str, text: str) -> str:
    """A TensorFlow C++ log line: `I0000 00:00:1795524890.785963    5062 cudart_stub.cc:31] text`."""
    return rf"{level}\d{{4}} [\d:.]+ +\d+ {re.escape(source)}:\d+\] {text}"


# The lines TensorFlow 2.21 writes to file descriptor 2 while it loads and first looks for devices.
# `import tensorflow` logs twice before absl's logging is initialised, so TF_CPP_MIN_LOG_LEVEL does not
# apply: when its first extension module (_pywrap_cpu_feature_guard) loads, and again when its
# profiler plugin (_pywrap_profiler_plugin) does. The first device query logs the cuInit error, at
# level E, which TF_CPP_MIN_LOG_LEVEL=2 keeps. Any other line passes.
TENSORFLOW_NOTICES = re.compile("|".join([
    r"WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR$",
    _cc_log("I", "cudart_stub.cc", r"Could not find cuda drivers on your machine, GPU will not be used\.$"),
    _cc_log("I", "cpu_feature_guard.cc", "This TensorFlow binary is optimized to use available CPU instructions"),
    r"To enable the following instructions: .*, in other operations, rebuild TensorFlow with the appropriate",
    _cc_log("I", "port.cc", r"oneDNN custom operations are on\. "),
    # No CUDA driver library to load (303, CUDA_ERROR_SHARED_OBJECT_INIT_FAILED), as the cudart_stub
    # line said: a CPU-only machine. Any other cuInit failure is a broken GPU setup and passes.
    _cc_log("E", "cuda_platform.cc", r"failed call to cuInit: .*\(303\)$"),
]))

# The filter runs in a helper process, so that a line written just before a crash (a C++ abort
# while TensorFlow loads) still gets out: the helper forwards until the pipe closes.
_FILTER = """
import os, re, sys
noise = re.compile(os.fsencode(sys.argv[1]))
for line in sys.stdin.buffer:
    if not noise.match(line):
        sys.stdout.buffer.write(line)
        sys.stdout.buffer.flush()
"""


@contextlib.contextmanager
def filtered_stderr(noise: re.Pattern[str]) -> Iterator[None]:
    """Inside the block, lines written to file descriptor 2 that `noise` matches (from their start) are dropped.

    Every other line passes, as it is written, in order: C++ libraries write to the descriptor
    directly, so filtering `sys.stderr` would not see them. `noise.pattern` is used, without flags.
    Without a usable descriptor 2 or a Python executable to run the filter, nothing is filtered.
    """
    sys.stderr.flush()
    try:
        original = os.dup(2)
    except OSError:
        yield
        return
    read_end, write_end = os.pipe()
    try:
        helper = subprocess.Popen(
            [sys.executable, "-I", "-S", "-c", _FILTER, noise.pattern],
            stdin=read_end, stdout=original, stderr=original,
            start_new_session=True,  # a Ctrl-C for this process must not stop the filter first
        )
    except (OSError, ValueError):  # no executable (an embedded interpreter)
        helper = None
    os.close(read_end)
    if helper is not None:
        os.dup2(write_end, 2)
    os.close(write_end)
    try:
        yield
    finally:
        if helper is not None:
            sys.stderr.flush()
            os.dup2(original, 2)  # closes the pipe's last write end: the helper drains it and exits
            with contextlib.suppress(subprocess.TimeoutExpired):  # a child process still holds the pipe
                helper.wait(timeout=10)
        os.close(original)


class _QuietTensorFlowImport(importlib.abc.MetaPathFinder):
    """Runs the first `import tensorflow`, wherever it happens, and its first device query in `filtered_stderr`."""

    def find_spec(self, name, path=None, target=None):
        if name != "tensorflow":
            return None
        with contextlib.suppress(ValueError):
            sys.meta_path.remove(self)  # the first import only
        spec = importlib.util.find_spec(name)
        if spec is not None and hasattr(spec.loader, "exec_module"):
            spec.loader.exec_module = functools.partial(_load_quietly, spec.loader.exec_module)
        return spec


def _load_quietly(exec_module: Callable, module) -> None:
    with filtered_stderr(TENSORFLOW_NOTICES):
        exec_module(module)
        # The first device query logs the cuInit error: made here, inside the filter, rather than
        # wherever TensorFlow would first need its devices.
        try:
            module.config.list_physical_devices()
        except Exception:  # it fails again, visibly, where TensorFlow first needs its devices
            pass


class _NoRetracingNotices(logging.Filter):
    """Drops TensorFlow's "N out of the last M calls to <function> triggered tf.function retracing".

    Every trial and retraining builds a new model, whose functions are traced anew: the retracing
    that TensorFlow warns about is expected here, and the warning has nothing to act on.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return "triggered tf.function retracing" not in record.getMessage()


def quiet_tensorflow() -> None:
    """Keep TensorFlow's start-up notices and retracing warnings off the console; real errors still show.

    Imports nothing: the first `import tensorflow` (by Keras, Keras Tuner or the data loader) runs
    with file descriptor 2 filtered through TENSORFLOW_NOTICES, and the "tensorflow" logger drops
    retracing warnings. With TF_CPP_MIN_LOG_LEVEL set to 0 or 1 (asking for TensorFlow's info
    lines), the start-up lines are left alone. Call it after `configure()`, before TensorFlow loads.
    """
    tf_logger = logging.getLogger("tensorflow")
    if not any(isinstance(f, _NoRetracingNotices) for f in tf_logger.filters):
        tf_logger.addFilter(_NoRetracingNotices())
    if os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2") in ("0", "1") or "tensorflow" in sys.modules:
        return
    if not any(isinstance(f, _QuietTensorFlowImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _QuietTensorFlowImport())


@contextlib.contextmanager
def without_notebook_modules(names: tuple[str, ...] = ("IPython", "matplotlib")):
    """Keep Keras from importing IPython and matplotlib, which only its notebook and plot helpers use.

    Keras imports both at start-up when they are installed (0.045 GB of a search's memory). Inside
    this block they cannot be imported (Keras falls back as if they were absent); afterwards they
    can again. Names already imported (a notebook) are left alone. On the TensorFlow backend JAX is
    kept out too: TensorFlow imports it when installed, for its converters (0.09 GB for nothing).
    """
    if os.environ.get("KERAS_BACKEND", "tensorflow") == "tensorflow":
        names = (*names, "jax")
    blocked = [name for name in names if name not in sys.modules]
    for name in blocked:
        sys.modules[name] = None  # "import name" now raises ImportError
    try:
        yield
    finally:
        for name in blocked:
            if sys.modules.get(name, "") is None:
                del sys.modules[name]


def set_tensorflow_threads(n: int) -> None:
    """TensorFlow's intra- and inter-op threads, before it first runs anything; StudyError if it already runs
    with others (they change the numbers). Nothing on another Keras backend."""
    if keras_backend() != "tensorflow":
        return
    import tensorflow as tf

    threading = tf.config.threading
    if (threading.get_intra_op_parallelism_threads(), threading.get_inter_op_parallelism_threads()) == (n, n):
        return
    try:
        threading.set_intra_op_parallelism_threads(n)
        threading.set_inter_op_parallelism_threads(n)
    except RuntimeError:
        from study.config import StudyError

        raise StudyError(f"this process's TensorFlow already runs with other thread counts than the {n} these "
                         "runs need: start a fresh worker") from None


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
    found = {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "backend": keras_backend(),
        **versions,
    }
    if "keras" in sys.modules:  # training has begun: the accelerator, if any, is known without importing more
        from study import devices

        gpu = devices.accelerator_name()
        if gpu:
            found["gpu"] = gpu
    return found


def keras_backend() -> str:
    """The backend Keras uses, or will use once imported: "tensorflow", "jax", "torch"...; imports nothing.

    Keras's own rule (keras/src/backend/config.py): KERAS_BACKEND when set and not empty, else the
    "backend" of keras.json in KERAS_HOME (~/.keras, or /tmp/.keras when the home folder is not
    writable), else "tensorflow". Recorded with every search and retraining, so this must not import
    TensorFlow: on the other backends it may not be installed.
    """
    keras = sys.modules.get("keras")
    config = getattr(keras, "config", None)
    if config is not None and hasattr(config, "backend"):  # already imported: its answer is final
        return config.backend()
    if os.environ.get("KERAS_BACKEND"):
        return os.environ["KERAS_BACKEND"]
    if "KERAS_HOME" in os.environ:
        folder = os.environ["KERAS_HOME"]
    else:
        home = os.path.expanduser("~")
        folder = os.path.join(home if os.access(home, os.W_OK) else "/tmp", ".keras")
    try:
        with open(os.path.expanduser(os.path.join(folder, "keras.json")), encoding="utf-8") as f:
            backend = json.load(f).get("backend")
    except (OSError, ValueError, AttributeError):  # no file, or not a JSON object: Keras ignores it too
        backend = None
    return backend or "tensorflow"


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
