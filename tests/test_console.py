"""A clean console: no TensorFlow start-up notices or retracing warnings, every real line still shown."""
from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from study import runtime

ROOT = Path(__file__).resolve().parents[1]

# What `python -m study.search` printed before study.runtime.quiet_tensorflow (TF 2.21, CPU only).
NOTICES = [
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
    "I0000 00:00:1795524890.785963    5062 cudart_stub.cc:31] Could not find cuda drivers on your machine, "
    "GPU will not be used.",
    "I0000 00:00:1795524890.840379    5062 cpu_feature_guard.cc:227] This TensorFlow binary is optimized to use "
    "available CPU instructions in performance-critical operations.",
    "To enable the following instructions: AVX2 FMA, in other operations, rebuild TensorFlow with the "
    "appropriate compiler flags.",
    "I0000 00:00:1795525181.741379    8478 port.cc:153] oneDNN custom operations are on. You may see slightly "
    "different numerical results due to floating-point round-off errors from different computation orders. "
    "To turn them off, set the environment variable `TF_ENABLE_ONEDNN_OPTS=0`.",
    "E0000 00:00:1795524944.915950    5894 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error: "
    "Failed call to cuInit: UNKNOWN ERROR (303)",
]
# Real lines that look alike: they must pass.
REAL = [
    "W0000 00:00:1795525193.310430    8478 local_rendezvous.cc:412] Local rendezvous is aborting with status: "
    "INVALID_ARGUMENT: In[0] ndims must be >= 2",
    "E0000 00:00:1795524944.915950    5894 cuda_platform.cc:52] failed call to cuInit: CUDA_ERROR_NO_DEVICE: "
    "no CUDA-capable device is detected (100)",
    "F0000 00:00:1795524890.840379    5062 cpu_feature_guard.cc:99] The TensorFlow library was compiled to use "
    "AVX instructions, but these aren't available on your machine.",
    "some warning mentioning cudart_stub.cc:31] Could not find cuda drivers on your machine",
]
NEEDLES = ("absl::InitializeLog", "cudart_stub", "cuda_platform", "cuInit", "cpu_feature_guard",
           "To enable the following instructions", "oneDNN", "retracing")


def _python(*args: str, **env: str) -> subprocess.CompletedProcess:
    """`python *args` in a fresh process, with TensorFlow's log level left to the commands' own default."""
    environ = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    environ.update(PYTHONPATH=str(ROOT), **env)
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=environ, timeout=300)


def test_notice_patterns_match_the_notices_only():
    assert all(runtime.TENSORFLOW_NOTICES.match(line) for line in NOTICES)
    assert not any(runtime.TENSORFLOW_NOTICES.match(line) for line in REAL)


def test_filter_drops_notices_and_passes_every_other_line_in_order():
    code = """if True:
        import json, os, sys, warnings
        from study import runtime
        with runtime.filtered_stderr(runtime.TENSORFLOW_NOTICES):
            for line in json.loads(sys.argv[1]):
                os.write(2, line.encode() + b"\\n")
            warnings.warn("a Python warning")
            os.write(2, b"no newline at the end")
        os.write(2, b"|after\\n")
    """
    mixed = [line for i, notice in enumerate(NOTICES) for line in (notice, f"real line {i}")] + REAL
    proc = _python("-c", code, json.dumps(mixed))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.splitlines()
    assert lines[:-2] == [line for line in mixed if line not in NOTICES]
    assert lines[-2].endswith("UserWarning: a Python warning")
    assert lines[-1] == "no newline at the end|after"


def test_a_line_written_just_before_a_crash_inside_the_filter_still_shows():
    code = """if True:
        import os, sys
        from study import runtime
        with runtime.filtered_stderr(runtime.TENSORFLOW_NOTICES):
            os.write(2, sys.argv[1].encode() + b"\\nF0000 check failed: about to abort\\n")
            os.abort()
    """
    proc = _python("-c", code, NOTICES[0])
    assert proc.returncode < 0  # killed by SIGABRT
    assert proc.stderr == "F0000 check failed: about to abort\n"


def test_retracing_warnings_are_dropped_and_other_tensorflow_warnings_kept(caplog):
    runtime.quiet_tensorflow()
    runtime.quiet_tensorflow()  # idempotent
    tf_logger = logging.getLogger("tensorflow")
    assert sum(isinstance(f, runtime._NoRetracingNotices) for f in tf_logger.filters) == 1
    with caplog.at_level(logging.WARNING, logger="tensorflow"):
        tf_logger.warning("5 out of the last 13 calls to <function f at 0x1> triggered tf.function retracing. ...")
        tf_logger.warning("a real TensorFlow warning")
    assert [r.getMessage() for r in caplog.records] == ["a real TensorFlow warning"]


def test_search_prints_no_tensorflow_notices_and_every_trial_line(tiny_data, tmp_path):
    # 3 one-epoch trials: enough for TensorFlow's retracing warning (it came twice without the filter).
    # oneDNN on: its notice too would show unfiltered.
    argv = ["--data-dir", str(tiny_data), "--epochs", "1", "--max-trials", "3", "--directory", str(tmp_path)]
    proc = _python("-m", "study.search", *argv, TF_ENABLE_ONEDNN_OPTS="1")
    assert proc.returncode == 0, proc.stderr[-3000:]
    shown = [needle for needle in NEEDLES if needle in proc.stdout + proc.stderr]
    assert not shown, proc.stderr
    for trial in range(3):
        assert f"trial {trial} started" in proc.stdout and f"\ntrial {trial} (optimizer=" in proc.stdout
    assert proc.stdout.count(" - val_loss: ") == 3 and "best: trial" in proc.stdout  # Keras's line per epoch


@pytest.mark.parametrize("argv, status, err", [
    (["--help"], 0, ""),
    (["--epochs", "0"], 2, "python -m study.search: error: --epochs must be > 0, got 0\n"),
])
def test_help_and_bad_input_stay_fast_and_short(argv, status, err):
    code = "import sys; from study import search; s = search.main(sys.argv[1:]); print('tensorflow' in sys.modules, s)"
    proc = _python("-c", code, *argv)
    assert proc.stdout.splitlines()[-1] == f"False {status}"  # TensorFlow not even imported
    assert proc.stderr == err
