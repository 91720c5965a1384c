"""A report folder holds one report: another is refused before any image is decoded, and a re-render is byte for byte."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path


from study import report
from study.config import DataConfig, SearchConfig

ROOT = Path(__file__).resolve().parents[1]

# Runs report.main in a fresh process with image decoding made to fail; prints the exit status and whether
# Keras or TensorFlow was imported.
_PROBE = """
import sys
from study import data, report
def decoded(*args, **kwargs):
    raise AssertionError("an image was decoded")
data.load_dataset = decoded
rc = report.main(sys.argv[1:])
print("rc", rc, "keras", "keras" in sys.modules, "tensorflow" in sys.modules)
"""


def _probe(argv: list[str]) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-c", _PROBE, *argv], capture_output=True, text=True, env=env, timeout=120)


def _search(directory: Path, name: str, **config) -> None:
    """A search project's config.json, as study.search writes it (no trials: the report needs none to plan)."""
    folder = directory / name
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({**SearchConfig(**config).to_dict(), "class_names": ["a"]}))


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_report_of_other_settings_or_searches_is_refused_before_any_image_is_decoded(tiny_data, tmp_path):
    searches, out = tmp_path / "searches", tmp_path / "out"
    searches.mkdir()
    argv = ["--data-dir", str(tiny_data), "--directory", str(searches), "--output", str(out), "--seeds", "1",
            "--epochs", "1"]
    assert report.main(argv) == 0
    before = _files(out)

    refused = _probe([*argv[:-1], "2"])  # --epochs 2
    assert refused.stdout.split() == ["rc", "2", "keras", "False", "False"], refused.stderr
    err = refused.stderr.strip()
    assert len(err.splitlines()) == 1 and "other epochs" in err and "--overwrite" in err and "--output" in err

    _search(searches, "grid", data=DataConfig(data_dir=str(tiny_data)))
    refused = _probe(argv)
    assert "rc 2" in refused.stdout and "other searches" in refused.stderr
    assert _files(out) == before  # nothing written by either refusal


def test_overwrite_starts_over_and_the_same_command_resumes(tiny_data, tmp_path, capsys):
    searches, out = tmp_path / "searches", tmp_path / "out"
    searches.mkdir()
    argv = ["--data-dir", str(tiny_data), "--directory", str(searches), "--output", str(out), "--seeds", "1",
            "--confirm-seeds", "0", "--epochs", "1"]
    assert report.main(argv) == 0
    assert report.main([*argv, "--seeds", "2"]) == 0  # more seeds: the same report, resumed
    capsys.readouterr()
    assert report.main([*argv[:-1], "2", "--overwrite"]) == 0
    said = capsys.readouterr().out
    assert "--overwrite: deleting" in said and "retrainings: 0 of 3 already saved" in said
    assert len(list((out / "runs").glob("*.json"))) == 3  # the old runs went with the old report
    assert json.loads((out / "config.json").read_text())["epochs"] == 2


def test_a_rerun_renders_the_same_bytes_however_long_it_took(tiny_data, tmp_path, monkeypatch):
    argv = ["--data-dir", str(tiny_data), "--directory", str(tmp_path / "searches"), "--output",
            str(tmp_path / "out"), "--seeds", "1", "--epochs", "1"]
    (tmp_path / "searches").mkdir()
    assert report.main(argv) == 0
    first = _files(tmp_path / "out")
    clock = time.monotonic
    monkeypatch.setattr(time, "monotonic", lambda: clock() + 12345.0)  # as if loading took hours
    assert report.main(argv) == 0
    again = _files(tmp_path / "out")
    assert again.keys() == first.keys()
    assert [name for name in first if first[name] != again[name]] == []


def test_an_unknown_model_answers_before_any_image_is_decoded(tmp_path):
    (tmp_path / "model.py").write_text("def build(hp, input_shape, num_classes):\n    pass\n")
    refused = _probe(["--model", f"{tmp_path / 'model.py'}:nowhere", "--directory", str(tmp_path),
                      "--output", str(tmp_path / "out"), "--data-dir", str(tmp_path)])
    assert "rc 2" in refused.stdout, refused.stderr
    assert "nowhere" in refused.stderr and len(refused.stderr.strip().splitlines()) == 1
