"""The layers of README's "Architecture" hold: the library (``sustainml``) never imports a node, a node
(``sustainml_nodes.X``) imports the library and never another node, and no module imports itself
back through others. Every import counts: module level, inside functions, under ``TYPE_CHECKING``,
relative ones resolved against the module that makes them. Reads the source with ``ast``: nothing is
imported, nothing starts."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Where each package's source lies (pyproject.toml maps the folder nodes/ to sustainml_nodes).
PACKAGES = {"sustainml": ROOT / "sustainml", "sustainml_nodes": ROOT / "nodes"}
LIBRARY = "sustainml"
NODES = "sustainml_nodes"


def _module_files() -> dict[str, Path]:
    """Every module of both packages by dotted name (a package by its own name, for ``__init__``)."""
    modules = {}
    for package, folder in PACKAGES.items():
        for path in sorted(folder.rglob("*.py")):
            parts = [package, *path.relative_to(folder).with_suffix("").parts]
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join(parts)] = path
    return modules


MODULES = _module_files()


def _is_package(module: str) -> bool:
    return MODULES[module].name == "__init__.py"


def _resolve(module: str, name: str | None, level: int) -> str:
    """The absolute name of ``from .name import …`` written in ``module``."""
    if level == 0:
        return name or ""
    base = module.split(".")
    if not _is_package(module):
        base.pop()  # a plain module's dots count from its package
    base = base[: len(base) - (level - 1)]
    return ".".join(base + ([name] if name else []))


def _target(name: str) -> str | None:
    """The module of ours that importing ``name`` loads last (itself, else its nearest parent), or None."""
    while name:
        if name in MODULES:
            return name
        name = name.rpartition(".")[0]
    return None


def imports_of(module: str) -> dict[str, int]:
    """The modules of ours that ``module`` imports, each with the line of its first import."""
    tree = ast.parse(MODULES[module].read_text(), filename=str(MODULES[module]))
    found: dict[str, int] = {}
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(module, node.module, node.level)
            # ``from pkg import sub`` imports the module pkg.sub when there is one, else a name of pkg.
            names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base
                     for alias in node.names]
        for name in names:
            target = _target(name)
            if target is not None and target != module:
                found.setdefault(target, node.lineno)
    return found


GRAPH = {module: imports_of(module) for module in MODULES}


def _node_of(module: str) -> str | None:
    """``sustainml_nodes.X.y`` → ``X``; None for the library and for the package ``sustainml_nodes``."""
    parts = module.split(".")
    return parts[1] if parts[0] == NODES and len(parts) > 1 else None


def _where(module: str, line: int) -> str:
    return f"{MODULES[module].relative_to(ROOT)}:{line}"


def test_the_library_never_imports_a_node():
    wrong = [f"{_where(module, line)} {module} imports {target}"
             for module, targets in GRAPH.items() if module.split(".")[0] == LIBRARY
             for target, line in targets.items() if target.split(".")[0] == NODES]
    assert not wrong, "the library imports nodes (move what both need into sustainml/):\n" + "\n".join(wrong)


def test_a_node_never_imports_another_node():
    wrong = [f"{_where(module, line)} {module} imports {target}"
             for module, targets in GRAPH.items() if _node_of(module)
             for target, line in targets.items()
             if target.split(".")[0] == NODES and _node_of(target) not in (None, _node_of(module))]
    assert not wrong, ("a node imports another node (move what they share into sustainml/):\n"
                       + "\n".join(wrong))


def find_cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """One cycle path per strongly connected component of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(start: str) -> None:
        # Iterative, so that a long chain of imports cannot reach the recursion limit.
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            module, targets = work[-1]
            for target in targets:
                if target not in index:
                    index[target] = low[target] = len(index)
                    stack.append(target)
                    on_stack.add(target)
                    work.append((target, iter(sorted(graph[target]))))
                    break
                if target in on_stack:
                    low[module] = min(low[module], index[target])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[module])
                if low[module] == index[module]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == module:
                            break
                    if len(component) > 1:
                        components.append(component)

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return [_cycle_through(graph, sorted(component)) for component in components]


def _cycle_through(graph: dict[str, dict[str, int]], component: list[str]) -> list[str]:
    """A shortest path from the component's first module back to itself, inside the component."""
    members = set(component)
    start = component[0]
    came_from: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for module in frontier:
            for target in sorted(graph[module]):
                if target not in members:
                    continue
                if target == start:
                    path = [module]
                    while path[-1] != start:
                        path.append(came_from[path[-1]])
                    return [*reversed(path), start]
                if target not in came_from:
                    came_from[target] = module
                    following.append(target)
        frontier = following
    raise AssertionError(f"no cycle through {component}")  # a component always has one


def test_no_import_cycles():
    cycles = find_cycles(GRAPH)
    described = [" -> ".join(f"{a} ({_where(a, GRAPH[a][b])})" for a, b in zip(cycle, cycle[1:]))
                 + f" -> {cycle[-1]}" for cycle in cycles]
    assert not cycles, "import cycles (split the module both sides need):\n" + "\n".join(described)


def test_the_cycle_finder_reports_a_path():
    graph = {"a": {"b": 1}, "b": {"c": 1}, "c": {"a": 1, "d": 1}, "d": {}, "e": {"e": 1}}
    assert find_cycles(graph) == [["a", "b", "c", "a"]]
    assert find_cycles({"a": {"b": 1}, "b": {}}) == []


def test_relative_imports_resolve():
    assert _resolve("sustainml_nodes.hw_constraints.node", "estimate", 1) == "sustainml_nodes.hw_constraints.estimate"
    assert _resolve("sustainml.tracking", "tracker", 1) == "sustainml.tracking.tracker"
    assert _resolve("sustainml.web.server", None, 2) == "sustainml"
