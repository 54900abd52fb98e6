"""The package's layers (ARCHITECTURE.md section 3): imports go down only, the pure rules stay pure, no cycles.

Read from the source, every import statement wherever it stands (a function-level import is still a dependency),
except those under ``if TYPE_CHECKING:``, which never run.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "airflow_checkpoint_sync"
NAME = PACKAGE.name
#: Layers from the bottom; a module may import its own layer and those below it. ``testing`` (the sandbox) stands
#: apart: it imports nothing of the provider, and nothing of the provider imports it.
LAYERS: list[tuple[str, ...]] = [
    ("rules", "exceptions"),
    ("hooks", "object_stores"),
    ("triggers",),
    ("task_support", "assets", "lineage", "links", "metrics"),
    ("operators", "sensors", "plugins", "dag_checks", "dag_processor_preload", "get_provider_info", "__init__"),
]


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _runtime_imports(path: Path) -> set[str]:
    """The modules ``path`` imports at run time (absolute names)."""
    tree = ast.parse(path.read_text())
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped.update(id(child) for inner in node.body for child in ast.walk(inner))
    package = _module_name(path) if path.name == "__init__.py" else _module_name(path).rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            # ``from package import module`` depends on the module (its package loads first for any submodule);
            # ``from module import name`` on the module.
            folder = PACKAGE.parent / base.replace(".", "/")
            submodules = {
                a.name for a in node.names if (folder / a.name).is_dir() or (folder / f"{a.name}.py").exists()
            }
            found.update(f"{base}.{name}" for name in submodules)
            if len(submodules) < len(node.names):
                found.add(base)
    return found


SOURCES = {
    _module_name(path): path
    for path in sorted(PACKAGE.rglob("*.py"))
    if "testing" not in path.relative_to(PACKAGE).parts
}
GRAPH = {
    module: {name for name in _runtime_imports(path) if name == NAME or name.startswith(f"{NAME}.")}
    for module, path in SOURCES.items()
}


def _layer(module: str) -> int:
    top = module.split(".")[1] if "." in module else "__init__"
    for rank, names in enumerate(LAYERS):
        if top in names:
            return rank
    raise AssertionError(f"{module} is on no layer: add its top-level name to LAYERS (and to ARCHITECTURE.md)")


def test_every_module_is_on_a_layer() -> None:
    for module in SOURCES:
        _layer(module)


def test_imports_go_down_only() -> None:
    upward = [
        f"{module} (layer {_layer(module)}) imports {target} (layer {_layer(target)})"
        for module, targets in GRAPH.items()
        for target in targets
        if target != NAME and not target.startswith(f"{NAME}.testing") and _layer(target) > _layer(module)
    ]
    assert not upward, "\n".join(upward)


def test_triggers_and_hooks_never_load_the_task_layer() -> None:
    task_layer = (f"{NAME}.task_support", f"{NAME}.operators", f"{NAME}.sensors")
    offenders = [
        f"{module} imports {target}"
        for module, targets in GRAPH.items()
        if module.startswith((f"{NAME}.triggers", f"{NAME}.hooks", f"{NAME}.object_stores", f"{NAME}.rules"))
        for target in targets
        if target.startswith(task_layer)
    ]
    assert not offenders, "\n".join(offenders)


def test_the_provider_never_imports_the_sandbox() -> None:
    offenders = [f"{m} imports {t}" for m, targets in GRAPH.items() for t in targets if t.startswith(f"{NAME}.testing")]
    assert not offenders, "\n".join(offenders)


def test_the_rules_import_only_rules_exceptions_and_the_standard_library() -> None:
    offenders = []
    for module, path in SOURCES.items():
        if not module.startswith(f"{NAME}.rules"):
            continue
        for name in _runtime_imports(path) | _type_checking_imports(path):
            top = name.split(".")[0]
            inside = name.startswith((f"{NAME}.rules", f"{NAME}.exceptions")) or name in (f"{NAME}.rules", NAME)
            third_party = top not in (NAME, "__future__") and top not in sys.stdlib_module_names
            if (top == NAME and not inside) or third_party:
                offenders.append(f"{module} imports {name}")
    assert not offenders, "\n".join(offenders)


def _type_checking_imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for inner in node.body:
                for child in ast.walk(inner):
                    if isinstance(child, ast.ImportFrom) and child.module:
                        names.add(child.module)
                    elif isinstance(child, ast.Import):
                        names.update(alias.name for alias in child.names)
    return names


def test_the_rules_load_with_airflow_unimportable() -> None:
    """Import every ``rules`` module in a fresh interpreter where importing ``airflow`` (or any third-party
    package) fails."""
    modules = sorted(m for m in SOURCES if m.startswith(f"{NAME}.rules"))
    script = textwrap.dedent(
        f"""
        import importlib, importlib.abc, sys

        class Blocked(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                top = name.split(".")[0]
                if top != {NAME!r} and top not in sys.stdlib_module_names:
                    raise ImportError(f"blocked: {{name}}")
                return None

        sys.meta_path.insert(0, Blocked())
        for module in {modules!r}:
            importlib.import_module(module)
        print(len({modules!r}))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=PACKAGE.parent, check=False
    )
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) >= 9


def _cycles() -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in GRAPH.get(node, ()):
            if target not in GRAPH or target == node:
                continue
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in GRAPH:
        if node not in index:
            visit(node)
    return found


def test_the_import_graph_has_no_cycle() -> None:
    assert _cycles() == []


@pytest.mark.parametrize("module", sorted(m for m in SOURCES if m.startswith(f"{NAME}.rules")))
def test_a_rules_module_is_imported_at_module_top(module: str) -> None:
    """Pure modules are cheap: whoever uses one imports it at the top, where a reader sees the dependency."""
    lazy = []
    for other, path in SOURCES.items():
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                for inner in ast.walk(node):
                    if isinstance(inner, ast.ImportFrom) and inner.module == module:
                        lazy.append(f"{other}.{node.name}")
    assert not lazy, f"{module} imported inside functions: {lazy}"
