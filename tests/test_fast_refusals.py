"""`python -m study.search` refuses bad input before decoding any image and before importing Keras (issue 22).

Each case runs in a fresh process where decoding an image raises, and, where asked, importing Keras,
TensorFlow or Keras Tuner fails: a refusal that comes after either would end in that error instead.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from study import search

ROOT = Path(__file__).resolve().parents[1]
GUARDED = """
import sys
import PIL.Image

def no_decoding(*args, **kwargs):
    raise AssertionError("an image was decoded")

PIL.Image.open = no_decoding
if sys.argv[1] == "no-keras":
    for name in ("keras", "tensorflow", "keras_tuner"):
        sys.modules[name] = None  # importing it now raises ImportError
from study import search
raise SystemExit(search.main(sys.argv[2:]))
"""


def _guarded(argv: list[str], no_keras: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-c", GUARDED, "no-keras" if no_keras else "keras", *argv],
                          capture_output=True, text=True, env=env, timeout=120)  # fmt: skip


def _refused(result: subprocess.CompletedProcess, message: str) -> None:
    assert result.returncode == 2, result.stderr[-3000:]
    err = result.stderr.strip()
    assert len(err.splitlines()) == 1 and message in err, err


@pytest.fixture
def searched(tiny_data, tmp_path):
    """A project as study.search leaves it (its config.json), without training anything."""
    argv = ["--data-dir", str(tiny_data), "--epochs", "1", "--directory", str(tmp_path / "runs")]
    cfg = search.parse_config(argv)
    cfg.project_dir.mkdir(parents=True)
    (cfg.project_dir / "config.json").write_text(json.dumps({**cfg.to_dict(), "class_names": ["a"]}))
    return argv


@pytest.mark.parametrize("change, what", [(["--learning-rates", "0.5"], "space"), (["--epochs", "2"], "epochs"),
                                          (["--subset", "50"], "data"), (["--batch-size", "8"], "batch_size")])
def test_a_changed_project_is_refused_before_keras_and_any_image(searched, change, what):
    argv = [*searched, *change]
    _refused(_guarded(argv), f"was searched with a different {what}")


def test_an_unwritable_directory_is_refused_before_keras_and_any_image(tiny_data, tmp_path):
    (tmp_path / "file").write_text("a file, not a folder")
    _refused(_guarded(["--data-dir", str(tiny_data), "--directory", str(tmp_path / "file" / "runs")]),
             "cannot write to")


def test_a_bad_flag_is_refused_before_keras(tmp_path):
    _refused(_guarded(["--epochs", "many", "--directory", str(tmp_path)]), "(see --help)")
    _refused(_guarded(["--no-such-flag"]), "unrecognized arguments")


def test_an_unknown_model_function_is_refused_before_any_image(tiny_data, tmp_path):
    model_file = tmp_path / "mine.py"
    model_file.write_text("def build(hp, input_shape, num_classes):\n    return None\n")
    argv = ["--data-dir", str(tiny_data), "--directory", str(tmp_path / "runs"), "--model", f"{model_file}:nope"]
    _refused(_guarded(argv, no_keras=False), "has no function nope")
    assert not (tmp_path / "runs").exists()


def test_the_guard_itself_catches_a_decoded_image(tiny_data, tmp_path):
    # The same process, on a command that gets as far as the data: it must not pass unnoticed.
    result = _guarded(["--data-dir", str(tiny_data), "--directory", str(tmp_path / "runs")], no_keras=False)
    assert result.returncode != 0 and "an image was decoded" in result.stderr
