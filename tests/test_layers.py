"""The layer table of ARCHITECTURE.md holds: imports go down only, no cycles, no torch in api/.

The table ("### Import order") is read from ARCHITECTURE.md itself, so the document and the
code can't drift apart: change the table and this test checks the new shape.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "src" / "packshot"
HEAVY = ("torch", "diffusers", "transformers", "peft")


def _import_order() -> list[tuple[str, list[str]]]:
    """(rank, packages) rows of ARCHITECTURE.md's import-order table, top to bottom."""
    text = (REPO / "ARCHITECTURE.md").read_text(encoding="utf-8")
    section = text.split("### Import order", 1)[1]
    rows = []
    for line in section.splitlines():
        if rows and not line.startswith("|"):
            break
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) != 2 or cells[0] in ("rank", "") or set(cells[0]) <= {"-"}:
            continue
        rows.append((cells[0], re.findall(r"`([\w.]+)`", cells[1])))
    assert rows, "ARCHITECTURE.md has no import-order table"
    return rows


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _package_of(module: str) -> str:
    """`packshot.shoot.run` → `shoot`; `packshot` → `packshot` (the root's `__version__`)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "packshot"


def _imports() -> dict[str, set[str]]:
    """Every packshot module → the packshot modules it imports (anywhere in the file)."""
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py") if "migrations" not in p.parts}
    graph: dict[str, set[str]] = defaultdict(set)
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                # `from packshot.x import y` imports the submodule y when there is one, else
                # the name y from packshot.x.
                for alias in node.names:
                    submodule = f"{node.module}.{alias.name}"
                    targets.append(submodule if submodule in modules else node.module)
            for target in targets:
                if target.startswith("packshot") and target in modules and target != name:
                    graph[name].add(target)
    for name in modules:
        graph.setdefault(name, set())
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one node (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                item = stack.pop()
                on_stack.discard(item)
                component.append(item)
                if item == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_every_package_is_in_the_table() -> None:
    named = {package for _, packages in _import_order() for package in packages}
    present = {_package_of(module) for module in _imports()}
    assert not present - named, (
        f"packages missing from ARCHITECTURE.md's import-order table: {sorted(present - named)}"
    )


def test_imports_go_down_only() -> None:
    rank = {pkg: i for i, (_, packages) in enumerate(_import_order()) for pkg in packages}
    upward = []
    for module, targets in _imports().items():
        for target in targets:
            source, dest = _package_of(module), _package_of(target)
            if rank[dest] < rank[source]:
                upward.append(f"{module} imports {target} ({source} is below {dest})")
    assert not upward, "imports that go up a layer:\n" + "\n".join(sorted(upward))


def test_no_import_cycles() -> None:
    graph = _imports()
    packages: dict[str, set[str]] = defaultdict(set)
    for module, targets in graph.items():
        for target in targets:
            if _package_of(target) != _package_of(module):
                packages[_package_of(module)].add(_package_of(target))
    assert not _cycles(dict(packages)), f"package cycles: {_cycles(dict(packages))}"
    assert not _cycles(graph), f"module cycles: {_cycles(graph)}"


def test_the_api_never_imports_torch() -> None:
    direct = []
    for path in (PACKAGE / "api").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            direct += [f"{path.name}: {n}" for n in names if n.split(".")[0] in HEAVY]
    assert not direct, direct
    # And not through what it imports: the web process starts without them.
    code = (
        "import sys, packshot.api.app, packshot.api.routes.jobs, packshot.api.routes.products; "
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert loaded == "[]", f"importing packshot.api loads {loaded}"


def test_the_checker_sees_an_upward_import_and_a_cycle() -> None:
    """The checks above would pass vacuously on a graph they misread: prove they bite."""
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    rank = {pkg: i for i, (_, packages) in enumerate(_import_order()) for pkg in packages}
    assert rank["intake"] > rank["shoot"] > rank["flows"] > rank["jobs"] > rank["api"]
    assert "packshot.flows.judged" in _imports()["packshot.flows.demo"]


# How heavy a module is to import, by the heaviest thing it loads: 3 for the model stack, 2 for
# the native image libraries, 1 for the service stack, 0 for the rest. An import inside a
# function is how a module reaches something heavier than itself without paying for it (the
# CLI's --help, the web process without torch, intake without the models); anything else goes
# at the top.
WEIGHTS = {
    **dict.fromkeys((*HEAVY, "accelerate"), 3),
    **dict.fromkeys(("cv2", "onnxruntime"), 2),
    **dict.fromkeys(("fastapi", "starlette", "uvicorn", "sqlalchemy", "alembic", "httpx"), 1),
    **dict.fromkeys(("safetensors", "huggingface_hub"), 1),
}
# Optional extras, which may not be installed: imported where used, with a clear error if not.
OPTIONAL = {"bitsandbytes", "ray", "matplotlib", "pillow_heif", "onnx", "torchao"}


def _is_type_checking(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def _top_level_imports(tree: ast.Module) -> list[str]:
    """Modules a file imports when it is imported (not in functions, not for type checkers)."""
    names: list[str] = []
    stack: list[ast.AST] = list(tree.body)
    while stack:
        node = stack.pop()
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            continue
        if _is_type_checking(node):
            continue
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names += [f"{node.module}.{alias.name}" for alias in node.names] + [node.module]
        else:
            stack.extend(ast.iter_child_nodes(node))
    return names


def _function_imports(tree: ast.Module) -> list[tuple[int, str]]:
    """(line, module) of each import inside a function, `__getattr__` of a package excepted."""
    found: list[tuple[int, str]] = []
    for func in ast.walk(tree):
        if not isinstance(func, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        if func.name == "__getattr__":  # a package's lazy attributes: the boundary itself
            continue
        for node in ast.walk(func):
            if isinstance(node, ast.Import):
                found += [(node.lineno, alias.name) for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names]
    return found


def _import_weights() -> tuple[dict[str, int], dict[str, Path]]:
    """Each packshot module's import weight (see WEIGHTS), and every module's path."""
    paths = {_module_name(p): p for p in PACKAGE.rglob("*.py") if "migrations" not in p.parts}
    edges: dict[str, set[str]] = {}
    weight: dict[str, int] = {}
    for name, path in paths.items():
        imported = set(_top_level_imports(ast.parse(path.read_text(encoding="utf-8"))))
        parents = {".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)}
        edges[name] = {m for m in imported | parents if m in paths and m != name}
        weight[name] = max((WEIGHTS.get(m.split(".")[0], 0) for m in imported), default=0)
    changed = True
    while changed:  # as heavy as the heaviest module it imports at its top
        changed = False
        for name, targets in edges.items():
            heaviest = max((weight[t] for t in targets), default=0)
            if heaviest > weight[name]:
                weight[name] = heaviest
                changed = True
    return weight, paths


def _lazy_names(paths: dict[str, Path]) -> dict[str, str]:
    """`packshot.pkg.name` → the module a package's `__getattr__` loads it from, as its
    `if TYPE_CHECKING:` imports declare (`from packshot.train.loop import train`)."""
    lazy: dict[str, str] = {}
    for package, path in paths.items():
        if path.name != "__init__.py":
            continue
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if _is_type_checking(node):
                for imp in ast.walk(node):
                    if isinstance(imp, ast.ImportFrom) and imp.module in paths:
                        lazy |= {f"{package}.{a.asname or a.name}": imp.module for a in imp.names}
    return lazy


def test_imports_are_at_the_top_unless_they_keep_a_module_light() -> None:
    weight, paths = _import_weights()
    lazy = _lazy_names(paths)
    misplaced = []
    for name, path in sorted(paths.items()):
        for line, target in _function_imports(ast.parse(path.read_text(encoding="utf-8"))):
            root = target.split(".")[0]
            if root == "packshot":  # `from packshot.x import y`: the module y, else packshot.x
                if target not in paths:
                    target = lazy.get(target) or target.rsplit(".", 1)[0]
                lazy_is_needed = weight[target] > weight[name]
            else:
                lazy_is_needed = root in OPTIONAL or WEIGHTS.get(root, 0) > weight[name]
            if not lazy_is_needed:
                misplaced.append(f"{path.relative_to(REPO)}:{line} imports {target}")
    assert not misplaced, (
        "imports inside functions that belong at the top of their module (only an import that "
        "keeps a module lighter than what it imports may wait):\n" + "\n".join(misplaced)
    )
