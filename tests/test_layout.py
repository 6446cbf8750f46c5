"""The shape of the source tree: no import circle (function-level imports counted), no module
over 400 lines, no function over 60, a thin CLI, and function-level imports only where they
defer a heavy optional dependency.

Run as a script to print the figures: `python tests/test_layout.py`.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "mnistgan"
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60
MAX_CLI_LINES = 350
# The comment that must sit on (or just above) a function-level import: it defers a heavy or
# optional dependency, not a circle.
DEFERRAL_MARK = "lazy:"


@dataclass
class Module:
    name: str
    path: Path
    lines: int
    imports: dict[str, list[int]] = field(default_factory=dict)  # target module -> line numbers
    deferred: list[tuple[int, str, bool]] = field(default_factory=list)  # (line, target, marked)
    functions: list[tuple[str, int, int]] = field(default_factory=list)  # (name, line, length)


def _module_name(path: Path, src: Path = SRC) -> str:
    parts = list(path.relative_to(src).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _targets(node: ast.AST, current: str, is_pkg: bool, known: set[str]) -> list[str]:
    """The mnistgan modules an import statement executes by name (parents implied by Python's
    package machinery are not counted: every module has those)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names if a.name.split(".")[0] == PACKAGE]
    assert isinstance(node, ast.ImportFrom)
    base = node.module or ""
    if node.level:
        anchor = current.split(".") if is_pkg else current.split(".")[:-1]
        anchor = anchor[: len(anchor) - (node.level - 1)]
        base = ".".join(anchor + ([base] if base else []))
    if base.split(".")[0] != PACKAGE:
        return []
    found = []
    for alias in node.names:
        sub = f"{base}.{alias.name}"
        found.append(sub if sub in known else base)
    return found


def _in_type_checking(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> bool:
    while node in parents:
        node = parents[node]
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            return True
    return False


def _in_function(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> bool:
    while node in parents:
        node = parents[node]
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            return True
    return False


def _marked(source_lines: list[str], line: int) -> bool:
    """The deferral comment on the import's line, or above it in the same block of comments and
    imports."""
    if DEFERRAL_MARK in source_lines[line - 1]:
        return True
    i = line - 2  # up through the comments and imports of the same block
    while i >= 0 and source_lines[i].strip().startswith(("#", "from ", "import ")):
        if DEFERRAL_MARK in source_lines[i]:
            return True
        i -= 1
    return False


def scan(src: Path = SRC) -> dict[str, Module]:
    paths = sorted((src / PACKAGE).rglob("*.py"))
    known = {_module_name(p, src) for p in paths}
    modules = {}
    for path in paths:
        name = _module_name(path, src)
        text = path.read_text(encoding="utf-8")
        tree = ast.parse(text)
        parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
        source_lines = text.splitlines()
        mod = Module(name, path, len(source_lines))
        is_pkg = path.name == "__init__.py"
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                mod.functions.append((node.name, node.lineno, node.end_lineno - node.lineno + 1))
            if not isinstance(node, ast.Import | ast.ImportFrom):
                continue
            if _in_type_checking(node, parents):
                continue
            targets = _targets(node, name, is_pkg, known)
            for target in targets:
                mod.imports.setdefault(target, []).append(node.lineno)
            if _in_function(node, parents):
                what = ", ".join(targets) or ast.unparse(node)
                mod.deferred.append((node.lineno, what, _marked(source_lines, node.lineno)))
        modules[name] = mod
    return modules


def cycles(modules: dict[str, Module]) -> list[list[str]]:
    """One shortest cycle through each group of `circular_groups`."""
    return [_one_cycle(g, modules) for g in circular_groups(modules)]


def circular_groups(modules: dict[str, Module]) -> list[list[str]]:
    """Every strongly connected group of more than one module (or a module importing itself),
    found with Tarjan's algorithm."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in modules[v].imports:
            if w not in modules:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1 or v in modules[v].imports:
                groups.append(sorted(group))

    sys.setrecursionlimit(10_000)
    for v in sorted(modules):
        if v not in index:
            visit(v)
    return groups


def _one_cycle(group: list[str], modules: dict[str, Module]) -> list[str]:
    """A shortest path from the group's first module back to itself, inside the group."""
    start, members = group[0], set(group)
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in modules[v].imports:
                if w == start:
                    return paths[v] + [start]
                if w in members and w not in paths:
                    paths[w] = paths[v] + [w]
                    nxt.append(w)
        frontier = nxt
    return group


def figures(modules: dict[str, Module]) -> dict:
    long_functions = sorted(
        ((f"{m.name}.{fn}", length) for m in modules.values() for fn, _, length in m.functions
         if length > MAX_FUNCTION_LINES), key=lambda x: -x[1])
    long_modules = sorted(((m.name, m.lines) for m in modules.values()
                           if m.lines > MAX_MODULE_LINES), key=lambda x: -x[1])
    deferred = [(m.name, line, what, marked) for m in modules.values()
                for line, what, marked in m.deferred]
    return {
        "modules": len(modules),
        "lines": sum(m.lines for m in modules.values()),
        "cli_lines": modules[f"{PACKAGE}.cli"].lines,
        "long_modules": long_modules,
        "long_functions": long_functions,
        "function_level_imports": len(deferred),
        "unmarked_function_level_imports": [d for d in deferred if not d[3]],
        "cycles": cycles(modules),
    }


# -- the tests ------------------------------------------------------------------------------


def test_no_import_cycle_counting_function_level_imports():
    found = cycles(scan())
    assert found == [], "import circles: " + "; ".join(" -> ".join(c) for c in found)


def test_cycle_finder_sees_a_function_level_circle(tmp_path):
    pkg = tmp_path / PACKAGE
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from mnistgan.b import x\n")
    (pkg / "b.py").write_text("def f():\n    from mnistgan import a\n")
    found = cycles(scan(tmp_path))
    assert found == [["mnistgan.a", "mnistgan.b", "mnistgan.a"]]


def test_function_level_imports_say_what_they_defer():
    bad = figures(scan())["unmarked_function_level_imports"]
    assert bad == [], "function-level imports without a '# lazy: why' comment: " + ", ".join(
        f"{name}:{line} ({what})" for name, line, what, _ in bad)


def test_no_module_over_400_lines_and_a_thin_cli():
    f = figures(scan())
    assert f["long_modules"] == []
    assert f["cli_lines"] <= MAX_CLI_LINES


def test_no_function_over_60_lines():
    assert figures(scan())["long_functions"] == []


def test_help_imports_no_torch():
    """`mnistgan --help` (and `mnistgan train --help`) load click and the CLI, not PyTorch."""
    probe = ("import sys\nfrom mnistgan.cli import main\n"
             "for argv in (['--help'], ['train', '--help']):\n"
             "    try:\n        main(argv)\n    except SystemExit:\n        pass\n"
             "print(sorted(m for m in ('torch', 'numpy', 'PIL') if m in sys.modules))")
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env,
                         check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"


if __name__ == "__main__":
    f = figures(scan())
    print(f"modules {f['modules']}, lines {f['lines']}, cli.py {f['cli_lines']} lines")
    print(f"modules over {MAX_MODULE_LINES} lines: {f['long_modules']}")
    print(f"functions over {MAX_FUNCTION_LINES} lines: {f['long_functions']}")
    unmarked = f["unmarked_function_level_imports"]
    print(f"function-level imports: {f['function_level_imports']} "
          f"({len(unmarked)} without a '# {DEFERRAL_MARK} why' comment)")
    groups = circular_groups(scan())
    print(f"import circles: {len(groups)} groups of modules that import each other")
    for group, c in zip(groups, f["cycles"], strict=True):
        print(f"  {len(group)} modules: {', '.join(group)}; e.g. {' -> '.join(c)}")
