"""The layout's rules hold for the real source tree (docs/ARCHITECTURE.md, "Floors"):

  * every project import names a floor at or below the importing module's own floor;
  * project imports sit at the top of a module (the `hwgan` dispatcher names its command
    modules as strings instead, so `hwgan --help` loads nothing);
  * no private (underscore) name of one module is used by another;
  * no module sets process state when imported (umask, environment, signals, seeds).

The checks read the source with `ast`: nothing is imported.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Lowest first. A module may import from its own floor or any floor below it.
FLOORS = [
    ["data_pipeline"],
    ["hw_gan.config", "hw_gan.losses", "hw_gan.shipped"],
    ["hw_gan.models"],
    ["hw_gan.training"],
    ["hw_gan.evaluation"],
    ["hw_gan.layout"],
    ["hw_gan.inversion"],
    ["hw_gan.export"],
    ["hw_gan.adaptation"],
    ["hw_gan.render"],
    ["hw_gan.experiment"],
    ["hw_gan.serve"],
    ["hw_gan.app"],
    ["hw_gan.cli"],
    ["train_main"],
]
PROCESS_STATE = ("os.umask", "os.environ", "signal.signal", "set_random_seed", "tf.random.set_seed",
                 "np.random.seed", "random.seed", "os.putenv")


def _modules():
    found = {}
    for package in ("data_pipeline", "hw_gan"):
        for path in sorted((ROOT / package).rglob("*.py")):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            found[name.removesuffix(".__init__")] = path
    found["train_main"] = ROOT / "train_main.py"
    return found


MODULES = _modules()


def _floor(module: str) -> int:
    if module == "hw_gan":  # the bare package: a docstring, it imports nothing
        return 0
    for i, names in enumerate(FLOORS):
        if any(module == n or module.startswith(n + ".") for n in names):
            return i
    raise AssertionError(f"{module} is on no floor: add it to FLOORS and docs/ARCHITECTURE.md")


def _project(name: str) -> bool:
    return name.split(".")[0] in ("hw_gan", "data_pipeline", "train_main")


def _imports(tree):
    """(imported module, line, inside a function?) for every project import of a module."""
    out = []

    def visit(node, in_function):
        for child in ast.iter_child_nodes(node):
            inner = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef))
            if isinstance(child, ast.Import):
                out.extend((a.name, child.lineno, in_function) for a in child.names
                           if _project(a.name))
            elif isinstance(child, ast.ImportFrom) and child.module and _project(child.module):
                for a in child.names:
                    full = f"{child.module}.{a.name}"
                    out.append((full if full in MODULES else child.module, child.lineno,
                                in_function))
            visit(child, inner)

    visit(tree, False)
    return out


def import_violations(module: str, source: str) -> list[str]:
    tree = ast.parse(source)
    own, found = _floor(module), []
    for name, line, in_function in _imports(tree):
        if in_function:
            found.append(f"{module}:{line} imports {name} inside a function")
        if _floor(name) > own:
            found.append(f"{module}:{line} imports {name}, a higher floor ({_floor(name)} > {own})")
    return found


def private_uses(module: str, source: str) -> list[str]:
    tree = ast.parse(source)
    aliases, found = {}, []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and _project(node.module):
            for a in node.names:
                if a.name.startswith("_") and not a.name.startswith("__"):
                    found.append(f"{module}:{node.lineno} imports the private "
                                 f"{node.module}.{a.name}")
                aliases[a.asname or a.name] = f"{node.module}.{a.name}"
        elif isinstance(node, ast.Import):
            for a in node.names:
                if _project(a.name):
                    aliases[a.asname or a.name.split(".")[0]] = a.name
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                and node.value.id in aliases and node.attr.startswith("_")
                and not node.attr.startswith("__")):
            found.append(f"{module}:{node.lineno} uses the private "
                         f"{aliases[node.value.id]}.{node.attr}")
    return found


def _module_level_nodes(tree):
    """Expressions that run when the module is imported (not in a def, nor under
    `if __name__ == "__main__":`)."""
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            continue
        if _is_main_block(node):
            continue
        yield from ast.walk(node)


def import_time_state(module: str, source: str) -> list[str]:
    found = []
    for node in _module_level_nodes(ast.parse(source)):
        if isinstance(node, (ast.Call, ast.Subscript)):
            text = ast.unparse(node.func if isinstance(node, ast.Call) else node)
            if any(text.startswith(p) for p in PROCESS_STATE):
                found.append(f"{module}:{node.lineno} runs {text} at import time")
    return found


def _is_main_block(node) -> bool:
    return (isinstance(node, ast.If) and isinstance(node.test, ast.Compare)
            and isinstance(node.test.left, ast.Name) and node.test.left.id == "__name__")


def process_state_calls(module: str, source: str) -> list[str]:
    """Calls anywhere in the module (except its `if __name__ == "__main__":` script block) that
    set seeds, signals, umask or the environment."""
    found = []
    tree = ast.parse(source)
    tree.body = [node for node in tree.body if not _is_main_block(node)]
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            text = ast.unparse(node.func)
            writes_env = text in ("os.environ.setdefault", "os.putenv", "os.environ.update")
            if writes_env or any(text.startswith(p) for p in PROCESS_STATE if p != "os.environ"):
                found.append(f"{module}:{node.lineno} {text}")
    return found


def _source(module: str) -> str:
    return MODULES[module].read_text(encoding="utf-8")


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_go_down_and_sit_at_the_top(module):
    assert import_violations(module, _source(module)) == []


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_private_names_across_modules(module):
    assert private_uses(module, _source(module)) == []


@pytest.mark.parametrize("module", sorted(MODULES))
def test_importing_sets_no_process_state(module):
    assert import_time_state(module, _source(module)) == []


def test_library_code_leaves_seeds_signals_umask_and_environment_alone():
    """Only the entry points (hw_gan.cli, train_main) and the application floor
    (hw_gan.experiment, which seeds Keras before building a trainer) set process state."""
    allowed = ("hw_gan.cli", "train_main", "hw_gan.experiment")
    offenders = [line for module in MODULES if not module.startswith(allowed)
                 for line in process_state_calls(module, _source(module))]
    assert offenders == []


def test_the_checks_catch_each_kind_of_violation():
    source = ("import os\nimport signal\n"
              "from hw_gan.serve import App\n"
              "from hw_gan import export\n"
              "from hw_gan.export import _hidden\n"
              "os.umask(0o022)\n"
              "def f():\n    import hw_gan.render\n    signal.signal(2, None)\n"
              "    return export._private\n")
    found = import_violations("hw_gan.layout", source)
    assert any("imports hw_gan.serve, a higher floor" in v for v in found)
    assert any("imports hw_gan.render inside a function" in v for v in found)
    assert any("export, a higher floor" in v for v in found)
    private = private_uses("hw_gan.layout", source)
    assert any("hw_gan.export._hidden" in v for v in private)
    assert any("hw_gan.export._private" in v for v in private)
    assert import_time_state("hw_gan.layout", source) == ["hw_gan.layout:6 runs os.umask at "
                                                          "import time"]
    assert [c.split()[-1] for c in process_state_calls("hw_gan.layout", source)] == [
        "os.umask", "signal.signal"]
