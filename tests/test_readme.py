"""The README's quick start runs as written on a fresh copy of the repository, and changes no tracked file."""
from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import make_dataset

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
ARCHIVE = "../shared/data/cifar10-jpeg.tar.gz"


def quick_start(text: str) -> list[str]:
    """The commands of the first bash block under the "## Run a study" heading, continuation lines joined."""
    section = re.search(r"^## Run a study.*?^```bash\n(.*?)^```", text, flags=re.M | re.S)
    assert section, "README.md has no '## Run a study' heading followed by a bash block"
    joined = section.group(1).replace("\\\n", " ")
    return [line.strip() for line in joined.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def test_the_quick_start_block_is_found_and_reads_the_shared_archive():
    commands = quick_start(README.read_text())
    assert len(commands) >= 3 and all(c.startswith("python -m study.") for c in commands)
    assert any("study.search" in c and ARCHIVE in c for c in commands)
    assert commands[-1].startswith("python -m study.report")


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=True).stdout


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("git") is None, reason="git is needed to see what the commands changed")
def test_the_quick_start_runs_as_written_and_changes_no_tracked_file(tmp_path):
    repo = tmp_path / "clone"
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    files = [f for f in tracked.decode().split("\0") if f and (ROOT / f).is_file()]
    if not files:
        pytest.skip("not a git checkout")
    for name in files:
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, repo / name)
    _git(repo, "init", "-q")
    _git(repo, "add", "-A")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "fresh clone")
    # A tiny generated dataset stands in for the archive (and a subset that fits it for --subset).
    data = make_dataset(tmp_path / "data", classes=tuple(f"class{i}" for i in range(10)), n_train=30, n_test=6)
    env = {**os.environ, "PYTHONPATH": str(repo), "TF_CPP_MIN_LOG_LEVEL": "2"}
    for command in quick_start((repo / "README.md").read_text()):
        argv = shlex.split(command.replace(ARCHIVE, str(data)))
        if "--subset" in argv:
            argv[argv.index("--subset") + 1] = "200"
        done = subprocess.run([sys.executable, *argv[1:]], cwd=repo, env=env, capture_output=True, text=True,
                              timeout=900)
        assert done.returncode == 0, f"{command}\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
    assert (repo / "reports" / "report.md").exists()
    assert _git(repo, "status", "--porcelain") == ""  # nothing tracked changed, nothing untracked left unignored
