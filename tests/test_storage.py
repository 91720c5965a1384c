from __future__ import annotations

import json

import pytest

from study import storage


def test_write_is_all_or_nothing(tmp_path, monkeypatch):
    path = tmp_path / "sub" / "table.csv"
    storage.write_text(path, "old\n")
    assert path.read_text() == "old\n"

    def crash(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(storage.os, "replace", crash)
    with pytest.raises(OSError):
        storage.write_text(path, "new and much longer\n")
    assert path.read_text() == "old\n"  # the old file is untouched
    assert [p.name for p in path.parent.iterdir()] == ["table.csv"]  # no temporary file left


def test_json_round_trip_with_numpy_values(tmp_path):
    import numpy as np

    storage.write_json(tmp_path / "m.json", {"acc": np.float32(0.5), "counts": np.arange(3), "n": np.int64(4)})
    assert storage.read_json(tmp_path / "m.json") == {"acc": 0.5, "counts": [0, 1, 2], "n": 4}
    assert json.loads((tmp_path / "m.json").read_text())["n"] == 4
