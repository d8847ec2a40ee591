"""The package's layers, read from the source: the library (``matssl_featurizers``) at the bottom and free of import
circles, ``pretraining`` above it, the evaluation commands (``pretraining.evaluation``) above both; no command
imports another command's module, and no installed module reads the checkout's ``../shared`` data."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]


def modules(package: str) -> dict[str, Path]:
    """Dotted name -> file of every module of ``package``."""
    base = ROOT / package.replace(".", "/")
    return {".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__"): path
            for path in sorted(base.rglob("*.py"))}


def imports(name: str, path: Path) -> set[str]:
    """The project modules ``name`` imports anywhere in its file (function-level imports too)."""
    tree, package = ast.parse(path.read_text()), name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parent + ([node.module] if node.module else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)  # "from . import x" names a module
    known = {**modules("matssl_featurizers"), **modules("pretraining")}
    return {module for module in found if module in known and module != name}


def is_command(path: Path) -> bool:
    """Whether the module runs as a command: a top-level ``if __name__ == "__main__":``."""
    return any(isinstance(node, ast.If) and isinstance(node.test, ast.Compare) and isinstance(node.test.left, ast.Name)
               and node.test.left.id == "__name__" for node in ast.parse(path.read_text()).body)


def test_the_library_has_no_import_circle():
    library = modules("matssl_featurizers")
    graph = {name: {m for m in imports(name, path) if m in library and m != "matssl_featurizers"}
             for name, path in library.items() if name != "matssl_featurizers"}
    state = {}

    def visit(node, trail):
        if state.get(node) == "done":
            return
        if state.get(node) == "open":
            raise AssertionError("import circle: " + " -> ".join(trail[trail.index(node):] + [node]))
        state[node] = "open"
        for target in sorted(graph[node]):
            visit(target, trail + [node])
        state[node] = "done"

    for node in sorted(graph):
        visit(node, [])


def test_each_layer_imports_only_the_layers_below_it():
    for name, path in modules("matssl_featurizers").items():
        assert not any(m.startswith("pretraining") for m in imports(name, path)), f"{name} imports training code"
    for name, path in modules("pretraining").items():
        if not name.startswith("pretraining.evaluation"):
            assert not any(m.startswith("pretraining.evaluation") for m in imports(name, path)), f"{name} imports evaluation"


def test_no_command_imports_another_command():
    every = {**modules("matssl_featurizers"), **modules("pretraining")}
    commands = {name for name, path in every.items() if is_command(path)}
    assert {"pretraining.run", "pretraining.evaluation.headline", "pretraining.evaluation.evaluate"} <= commands
    for name in sorted(commands):
        assert not (imports(name, every[name]) & commands), f"{name} imports {sorted(imports(name, every[name]) & commands)}"


@pytest.mark.parametrize("package", ["matssl_featurizers", "pretraining"])
def test_no_installed_module_reads_the_checkouts_shared_data(package):
    for name, path in modules(package).items():
        tree = ast.parse(path.read_text())
        docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                      if isinstance(node, (ast.Module, ast.FunctionDef, ast.ClassDef)) and node.body
                      and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
                assert "shared/data" not in node.value and "../shared" not in node.value, f"{name}: {node.value!r}"
            if isinstance(node, ast.BinOp) and isinstance(node.right, ast.Constant) and node.right.value == "shared":
                raise AssertionError(f"{name} builds a path to ../shared")
