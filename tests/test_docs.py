"""Where the docs give a number the code can check, it is checked."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from conftest import make_dataset

from study import cli
from study.config import DataConfig
from study.data import load_dataset

ROOT = Path(__file__).resolve().parents[1]


def test_the_number_of_slow_tests_is_the_one_the_docs_give():
    done = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-m", "slow", "-n", "0",
                           "-p", "no:cacheprovider"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    collected = [line for line in done.stdout.splitlines() if "::" in line]
    said = re.search(r"leaves out the (\d+) slow ones", (ROOT / "docs" / "development.md").read_text())
    assert said and int(said.group(1)) == len(collected), collected


def test_subset_gives_the_split_the_docs_and_the_help_say(tmp_path):
    # CIFAR-10's proportions, 5 training images for each test image: --subset 200 is 160 / 40 / 40.
    data = make_dataset(tmp_path / "d", classes=tuple(f"c{i}" for i in range(10)), n_train=25, n_test=5, size=(8, 8))
    split = load_dataset(DataConfig(data_dir=str(data), subset=200, image_size=(8, 8)), keep_test=True)
    numbers = (len(split.y_train), len(split.y_val), len(split.y_test))
    assert numbers == (160, 40, 40)
    text = "160 training, 40 validation and 40 test images"
    assert text in " ".join((ROOT / "docs" / "data.md").read_text().split())
    parser = cli.Parser()
    cli.add_data_arguments(parser)
    assert "160 training / 40 validation / 40 test" in " ".join(parser.format_help().split())
