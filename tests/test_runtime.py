"""The process settings that keep a search's memory down."""
from __future__ import annotations

import subprocess
import sys

import pytest

from study import runtime


def test_notebook_modules_are_blocked_only_inside_the_block():
    if "tabnanny" in sys.modules:
        pytest.skip("tabnanny already imported in this process")
    with runtime.without_notebook_modules(("tabnanny", "json")):
        with pytest.raises(ImportError):
            import tabnanny  # noqa: F401
        import json  # already imported before the block: left alone  # noqa: F401
    import tabnanny  # noqa: F401,F811

    assert sys.modules["tabnanny"] is not None


def test_search_process_never_imports_ipython_or_matplotlib(tiny_data, tmp_path):
    # In a fresh process: this one imported matplotlib already (conftest).
    code = (
        "import sys; from study import search; "
        f"status = search.main(['--data-dir', {str(tiny_data)!r}, '--epochs', '1', '--max-trials', '1', "
        f"'--directory', {str(tmp_path)!r}]); "
        "print('imported:', status, sorted(m for m in ('IPython', 'matplotlib', 'keras_tuner') if m in sys.modules))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert "imported: 0 ['keras_tuner']" in proc.stdout, proc.stdout[-1000:] + proc.stderr[-1000:]
