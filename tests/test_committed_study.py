"""Each committed study and ablation re-renders to itself: its recorded command, rerun on a fresh copy, gives its
files byte for byte."""
from __future__ import annotations

import json
import shlex
import shutil
from pathlib import Path

import pytest
from conftest import SHARED_CIFAR

from study import ablate, report

ROOT = Path(__file__).resolve().parents[1]
STUDIES = sorted(p.parents[1].name for p in ROOT.glob("studies/*/report/metrics.json"))
ABLATIONS = sorted(p.parents[1].name for p in ROOT.glob("studies/*/ablation/ablation.json"))
# Never committed (.gitignore): a checkout may have them, a fresh clone does not.
UNCOMMITTED = shutil.ignore_patterns("*.h5", "*.keras", "checkpoint*", "models", "tensorboard")


@pytest.mark.slow
@pytest.mark.skipif(not SHARED_CIFAR.exists(), reason=f"{SHARED_CIFAR} is absent (rendering reads the test labels)")
@pytest.mark.parametrize("study", STUDIES)
def test_the_committed_report_re_renders_byte_for_byte_without_weights(tmp_path, monkeypatch, capsys, study):
    repo = tmp_path / "clone"
    # Every study: one may reuse another's runs (--reuse), whose folder its recorded command names.
    shutil.copytree(ROOT / "studies", repo / "studies", ignore=UNCOMMITTED)
    (tmp_path / "shared").symlink_to(SHARED_CIFAR.parents[1])  # the data path is recorded as ../shared/...
    committed = ROOT / "studies" / study / "report"
    command = json.loads((committed / "metrics.json").read_text())["provenance"]["command"]
    argv = shlex.split(command)
    assert argv[:3] == ["python", "-m", "study.report"]

    monkeypatch.chdir(repo)
    assert report.main(argv[3:]) == 0
    assert ", 0 to train" in capsys.readouterr().out  # every run the report uses is saved: nothing trained

    rendered = repo / "studies" / study / "report"
    _same_files(rendered, committed)
    assert "## The answer as model files" in (rendered / "report.md").read_text()


def _same_files(rendered: Path, committed: Path) -> None:
    names = sorted(str(p.relative_to(rendered)) for p in rendered.rglob("*") if p.is_file())
    expected = sorted(str(p.relative_to(committed)) for p in committed.rglob("*")
                      if p.is_file() and not p.name.endswith(".h5") and "models" not in p.parts)
    assert names == expected
    differing = [n for n in names if (rendered / n).read_bytes() != (committed / n).read_bytes()]
    assert differing == []


@pytest.mark.slow
@pytest.mark.skipif(not SHARED_CIFAR.exists(), reason=f"{SHARED_CIFAR} is absent (rendering reads the test labels)")
@pytest.mark.parametrize("study", ABLATIONS)
def test_the_committed_ablation_re_renders_byte_for_byte_without_weights(tmp_path, monkeypatch, capsys, study):
    repo = tmp_path / "clone"
    shutil.copytree(ROOT / "studies", repo / "studies", ignore=UNCOMMITTED)  # the report's runs too (the source's)
    (tmp_path / "shared").symlink_to(SHARED_CIFAR.parents[1])
    committed = ROOT / "studies" / study / "ablation"
    argv = shlex.split(json.loads((committed / "ablation.json").read_text())["compute"]["command"])
    assert argv[:3] == ["python", "-m", "study.ablate"]

    monkeypatch.chdir(repo)
    assert ablate.main(argv[3:]) == 0
    assert "every run is saved: nothing to train" in capsys.readouterr().out
    _same_files(repo / "studies" / study / "ablation", committed)
