"""The package's layout holds: no import cycle between modules (imports at module level and inside
functions alike), no library module importing a job, no module name used twice, none over 400 lines."""
from __future__ import annotations

import ast
from collections import Counter
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "xray_spark"
MAX_LINES = 400


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}


def imported_modules(path: Path) -> set[str]:
    """The project's modules ``path`` imports, anywhere in the file (a name imported from a package
    is its submodule when one exists, else the package)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in MODULES else node.module
                     for a in node.names]
        else:
            continue
        found |= {n for n in names if n in MODULES}
    return found


def import_graph() -> dict[str, set[str]]:
    return {name: imported_modules(path) - {name} for name, path in MODULES.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v), on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def is_job(name: str) -> bool:
    return name == "xray_spark.jobs" or name.startswith("xray_spark.jobs.")


def test_the_graph_sees_imports_inside_functions():
    graph = import_graph()
    # doctor imports the tf.data reader inside a function only
    assert "xray_spark.cnn.data" in graph["xray_spark.jobs.doctor"]
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycles():
    assert cycles(import_graph()) == []


def test_library_never_imports_a_job():
    offending = {name: sorted(filter(is_job, deps)) for name, deps in import_graph().items()
                 if not is_job(name) and name != "xray_spark.cli" and any(map(is_job, deps))}
    assert offending == {}


def test_every_job_module_is_a_cli_job():
    from xray_spark.cli import JOBS

    jobs = {name for name in MODULES if is_job(name) and name != "xray_spark.jobs"}
    assert jobs == {module for module, _ in JOBS.values()}


def test_no_module_name_twice():
    names = Counter(p.stem for p in PACKAGE.rglob("*.py") if p.stem != "__init__")
    assert [n for n, c in names.items() if c > 1] == []


@pytest.mark.parametrize("name", sorted(MODULES))
def test_module_size(name):
    assert len(MODULES[name].read_text().splitlines()) <= MAX_LINES
