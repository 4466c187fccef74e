"""The layers of `mnist_budget/`, one folder each, bottom to top: imports point only down (or
within a folder), so a newcomer can read a layer knowing only the ones below it."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "mnist_budget"
# bottom to top; the stages (stages/) and benchmarks sit above them all
LAYERS = ["base", "config", "train", "report", "tools"]
TORCH_FREE = ["base", "config"]  # files and plain data: importable without torch's seconds


def imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def layer_modules(layer: str, package: Path = PACKAGE) -> list[Path]:
    return sorted((package / layer).glob("*.py"))


def upward_imports(layer: str, package: Path = PACKAGE) -> list[str]:
    """`module imports name` for each import of a module in `layer` that points up: to a
    later layer or to the stages."""
    allowed = set(LAYERS[: LAYERS.index(layer) + 1])
    return [
        f"{path.relative_to(package.parent)} imports {name}"
        for path in layer_modules(layer, package)
        for name in sorted(imported_modules(path))
        if name.split(".")[0] == "stages"
        or (name.startswith("mnist_budget.") and name.split(".")[1] not in allowed)
    ]


def test_every_module_lives_in_a_layer_folder():
    folders = {p.name for p in PACKAGE.iterdir() if p.is_dir() and p.name != "__pycache__"}
    assert folders == set(LAYERS)
    assert not list(PACKAGE.glob("*.py"))
    assert all(layer_modules(layer) for layer in LAYERS)


@pytest.mark.parametrize("layer", LAYERS)
def test_a_layer_imports_only_the_layers_below_it(layer):
    assert upward_imports(layer) == []


def test_the_check_sees_an_import_that_points_up(tmp_path):
    (tmp_path / "mnist_budget" / "train").mkdir(parents=True)
    (tmp_path / "mnist_budget" / "train" / "training.py").write_text(
        "from stages.cli import stage_main\nfrom mnist_budget.report import figures\n"
        "from mnist_budget.config.params import load_params\nimport torch\n"
    )
    assert upward_imports("train", tmp_path / "mnist_budget") == [
        "mnist_budget/train/training.py imports mnist_budget.report",
        "mnist_budget/train/training.py imports stages.cli",
    ]


@pytest.mark.parametrize("layer", TORCH_FREE)
def test_the_lower_layers_import_no_torch(layer):
    """params, configs and files are plain data: validated from the vocabularies, not the nets."""
    assert torch_modules([f"mnist_budget.{layer}.{path.stem}" for path in layer_modules(layer)]) == []


def test_the_reports_import_no_torch():
    """What the report stages read, `resolve` and `evaluate` wrote: they draw and write, and
    start without torch's seconds of import; the claim checker reads the sizes `resolve`
    counted, even of the steps trained elsewhere, on a GPU."""
    assert torch_modules(["stages.report", "stages.ablation", "stages.compare", "stages.headline"]) == []


def torch_modules(modules: list[str]) -> list[str]:
    """The torch modules that importing `modules` (in a fresh interpreter) loads."""
    code = f"import sys, {', '.join(modules)}; print(sorted(m for m in sys.modules if m.split('.')[0] == 'torch'))"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    return ast.literal_eval(result.stdout)
