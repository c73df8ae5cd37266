"""The shape of the code's imports, read from its source (no module is imported):

* no import cycle among FedoraCloud's modules (their module-level imports; those under
  ``if TYPE_CHECKING:`` do not run);
* no import of a FedoraCloud module inside a function, where it would hide a cycle,
  except the CLI's: each ``fedoracloud`` command imports what it needs when it runs, so
  that ``fedoracloud --help`` and ``enc`` start fast.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "fedoracloud"
#: modules whose functions may import project modules: the CLI defers them on purpose
DEFERRING = ("fedoracloud.cli",)


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def imported(module: str, node: ast.Import | ast.ImportFrom, package: bool) -> Iterator[str]:
    """The FedoraCloud modules an import statement imports (a submodule when it names one)."""
    if isinstance(node, ast.Import):
        yield from (a.name for a in node.names if a.name.split(".")[0] == "fedoracloud")
        return
    if node.level:
        base = module.split(".") if package else module.split(".")[:-1]
        base = base[: len(base) - node.level + 1]
        target = ".".join([*base, *([node.module] if node.module else [])])
    else:
        target = node.module or ""
    if target.split(".")[0] != "fedoracloud":
        return
    for alias in node.names:
        submodule = f"{target}.{alias.name}"
        yield submodule if submodule in MODULES else target


def imports(module: str) -> Iterator[tuple[str, int, bool]]:
    """(imported module, line, inside a function) for each project import of a module."""
    path = MODULES[module]
    package = path.name == "__init__.py"

    def walk(node: ast.AST, in_function: bool) -> Iterator[tuple[str, int, bool]]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import | ast.ImportFrom):
                for target in imported(module, child, package):
                    yield target, child.lineno, in_function
            elif isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                body = ast.Module(body=child.orelse, type_ignores=[])  # its body never runs
                yield from walk(body, in_function)
            elif isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
                yield from walk(child, True)
            else:
                yield from walk(child, in_function)

    yield from walk(ast.parse(path.read_text(encoding="utf-8")), False)


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in sorted(graph[node]):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_scan_sees_the_imports() -> None:
    assert "fedoracloud.cli.context" in MODULES and "fedoracloud" in MODULES
    found = {target for target, _line, local in imports("fedoracloud.cli") if not local}
    assert "fedoracloud.cli.context" in found
    assert any(local for _target, _line, local in imports("fedoracloud.cli.hosts"))


def test_no_import_cycle_among_fedoracloud_modules() -> None:
    graph = {
        module: {target for target, _line, local in imports(module) if not local}
        for module in MODULES
    }
    graph = {module: targets & MODULES.keys() - {module} for module, targets in graph.items()}
    assert cycles(graph) == []


def test_no_project_import_inside_a_function_but_the_cli_s() -> None:
    hidden = [
        f"{MODULES[module].relative_to(PACKAGE.parent)}:{line} imports {target}"
        for module in MODULES
        if not module.startswith(DEFERRING)
        for target, line, local in imports(module)
        if local
    ]
    assert hidden == []
