"""The package's shape: no import circle (type-only and function-level imports count), short functions and lines."""
from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "study"


def _imports(path: Path) -> set[str]:
    """Every study module `path` imports, wherever the import statement is."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module == "study":
                found |= {alias.name for alias in node.names}
            elif node.module.startswith("study."):
                found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            found |= {a.name.split(".")[1] for a in node.names if a.name.startswith("study.")}
    return found - {path.stem}


def _graph() -> dict[str, set[str]]:
    modules = {p.stem: p for p in PACKAGE.glob("*.py") if p.stem != "__init__"}
    return {name: _imports(path) & modules.keys() for name, path in modules.items()}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, str] = {}

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                return path[path.index(nxt):] + [node, nxt] if nxt in path else [node, nxt]
            if nxt not in state and (found := visit(nxt, path + [node])):
                return found
        state[node] = "done"
        return None

    for start in sorted(graph):
        if start not in state and (found := visit(start, [])):
            return found
    return None


def test_no_import_circle_in_the_package():
    graph = _graph()
    assert {"report", "render", "records", "stats"} <= graph.keys()
    assert _cycle(graph) is None, f"import circle: {' -> '.join(_cycle(graph))}"
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) is not None  # the check itself finds one


def test_functions_fit_on_a_screen_and_lines_within_120_characters():
    long_functions, long_lines = [], []
    for path in sorted(PACKAGE.glob("*.py")):
        text = path.read_text()
        long_lines += [f"{path.name}:{i}" for i, line in enumerate(text.splitlines(), 1) if len(line) > 120]
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > 60:
                    long_functions.append(f"{path.name}:{node.lineno} {node.name} ({length} lines)")
    assert not long_functions, long_functions
    assert not long_lines, long_lines


def test_every_module_says_its_one_job_in_a_line_and_stays_readable_in_one_sitting():
    oversized, undocumented = [], []
    for path in sorted(PACKAGE.glob("*.py")):
        text = path.read_text()
        if len(text.splitlines()) > 450:
            oversized.append(f"{path.name} ({len(text.splitlines())} lines)")
        doc = ast.get_docstring(ast.parse(text))
        if not doc or len(doc.splitlines()[0]) > 120 or not doc.splitlines()[0].rstrip().endswith((".", ":")):
            undocumented.append(path.name)
    assert not oversized, oversized
    assert not undocumented, undocumented
