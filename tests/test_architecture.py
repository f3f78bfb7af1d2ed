"""ARCHITECTURE.md's import invariants, checked on the source.

Every module of ``completion/``, ``monitors/`` and ``lsp_server/`` is parsed with ``ast`` and all
of its imports are read, the ones inside functions included: an import that only runs on first
use is still a dependency (and a function-level import is the usual way a cycle gets hidden).
``benchmarks/`` and ``examples/`` are held to the third-party rules too; ``tests/`` are not (they
are the LSP client, and they may build models).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("completion", "monitors", "lsp_server")
SCRIPTS = ("benchmarks", "examples")


@dataclass(frozen=True)
class Import:
    """One import statement's target, as an absolute dotted name, and where it is."""

    module: str  # the importing module, e.g. "monitors.base"
    target: str  # e.g. "monitors.worker", "llama_cpp", "pygls.server"
    line: int
    in_function: bool
    names: tuple[str, ...] = ()  # `from target import names`: each may be a module (`from . import worker`)

    def __str__(self) -> str:
        where = "function-level" if self.in_function else "module-level"
        return f"{self.module}:{self.line} imports {self.target} ({where})"


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(source: str, module: str, is_package: bool = False) -> list[Import]:
    """Every import in ``source`` (the module ``module``), relative ones made absolute."""
    package = module if is_package else module.rpartition(".")[0]
    found: list[Import] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            nested = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.Import):
                found.extend(Import(module, a.name, child.lineno, in_function) for a in child.names)
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = package.split(".")[: len(package.split(".")) - (child.level - 1)]
                    origin = ".".join(base + ([child.module] if child.module else []))
                else:
                    origin = child.module or ""
                found.append(Import(module, origin, child.lineno, in_function, tuple(a.name for a in child.names)))
            visit(child, nested)

    visit(ast.parse(source), False)
    return found


def project_sources(dirs: tuple[str, ...], root: Path = ROOT) -> dict[str, tuple[str, bool]]:
    """module name -> (source, is_package) for every .py file under ``dirs``."""
    out = {}
    for d in dirs:
        for path in sorted((root / d).rglob("*.py")):
            out[module_name(path, root)] = (path.read_text(encoding="utf-8"), path.name == "__init__.py")
    return out


def all_imports(sources: dict[str, tuple[str, bool]]) -> list[Import]:
    return [imp for name, (src, pkg) in sources.items() for imp in imports_of(src, name, pkg)]


def top(target: str) -> str:
    return target.split(".")[0]


def internal_graph(sources: dict[str, tuple[str, bool]]) -> dict[str, set[str]]:
    """module -> the project modules it imports (a name imported from a module counts as the module)."""
    graph: dict[str, set[str]] = {name: set() for name in sources}
    for imp in all_imports(sources):
        for candidate in [f"{imp.target}.{n}" for n in imp.names] or [imp.target]:
            target = candidate
            while target and target not in sources:
                target = target.rpartition(".")[0]
            if target and target != imp.module:
                graph[imp.module].add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                connect(w)
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
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return found


def describe_cycle(graph: dict[str, set[str]], component: list[str]) -> str:
    members = set(component)
    return "; ".join(f"{m} -> {', '.join(sorted(graph[m] & members))}" for m in component)


# ---- the rules: (what may not be imported, who may import it) -------------------------------


def violations(imports: list[Import]) -> list[str]:
    """Every import that breaks one of ARCHITECTURE.md's import invariants."""
    bad = []
    for imp in imports:
        pkg, target = top(imp.module), top(imp.target)
        if target in ("pygls", "lsprotocol") and pkg != "lsp_server":
            bad.append(f"{imp}: only lsp_server/ imports pygls / lsprotocol")
        if target == "llama_cpp" and imp.module != "completion.backend":
            bad.append(f"{imp}: only completion/backend.py imports llama_cpp")
        if pkg == "monitors" and target in ("completion", "lsp_server"):
            bad.append(f"{imp}: monitors/ never imports completion/ or lsp_server/")
        if pkg == "completion" and target == "lsp_server":
            bad.append(f"{imp}: completion/ never imports lsp_server/")
    return bad


# ---- the checks on the project ----------------------------------------------------------------


def test_the_project_keeps_the_import_invariants():
    sources = project_sources(PACKAGES + SCRIPTS)
    assert len(sources) > 30  # the walk found the project (an empty walk would pass anything)
    assert violations(all_imports(sources)) == []


def test_the_project_has_no_import_cycles():
    sources = project_sources(PACKAGES)
    graph = internal_graph(sources)
    assert "monitors.worker" in graph["monitors.base"]  # the graph sees the project's own imports
    found = cycles(graph)
    assert not found, "import cycles: " + " | ".join(describe_cycle(graph, c) for c in found)


# ---- the checker itself, on synthetic modules: it catches what it is meant to catch ----------


def check(modules: dict[str, str], expected: list[str]) -> None:
    """``modules``: name -> source; ``expected``: a fragment of each violation or cycle, in order."""
    sources = {name: (src, False) for name, src in modules.items()}
    graph = internal_graph(sources)
    found = violations(all_imports(sources)) + [" ".join(c) for c in cycles(graph)]
    assert len(found) == len(expected), found
    for got, want in zip(found, expected, strict=True):
        assert want in got, (got, want)


@pytest.mark.parametrize(
    "modules, expected",
    [
        ({"completion.engine": "import pygls.server\n"}, ["only lsp_server/ imports pygls"]),
        ({"monitors.base": "def f():\n    from lsprotocol import types\n"}, ["function-level"]),
        ({"lsp_server.server": "from lsprotocol import types\nimport pygls\n"}, []),
        ({"completion.engine": "from llama_cpp import Llama\n"}, ["only completion/backend.py imports llama_cpp"]),
        ({"completion.backend": "import llama_cpp\n"}, []),
        ({"benchmarks.replay": "import llama_cpp.llama_speculative\n"}, ["llama_cpp"]),
        ({"monitors.names": "def f():\n    from completion.engine import Engine\n"}, ["monitors/ never imports"]),
        ({"monitors.names": "import lsp_server.cli\n"}, ["monitors/ never imports"]),
        ({"completion.engine": "def f():\n    import lsp_server.server\n"}, ["completion/ never imports lsp_server"]),
        ({"completion.engine": "from monitors.suite import MonitorSuite\n"}, []),
        # cycles, relative imports, function-level imports and `from pkg import module`
        (
            {"monitors.a": "from .b import x\n", "monitors.b": "def f():\n    from . import a\n", "monitors": ""},
            ["monitors.a monitors.b"],
        ),
        (
            {
                "monitors.a": "from . import b\n",
                "monitors.b": "import monitors.python.c\n",
                "monitors.python.c": "def f():\n    from ..a import y\n",
            },
            ["monitors.a monitors.b monitors.python.c"],
        ),
        ({"monitors.a": "from . import b\n", "monitors.b": "from .c import z\n", "monitors.c": ""}, []),
    ],
)
def test_checker_catches(modules, expected):
    check(modules, expected)
