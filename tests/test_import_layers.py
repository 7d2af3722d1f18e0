"""Imports run one way: pipeline scripts at the top, packages below them, helpers at the bottom.

Each module's imports of project modules are read with ast (nothing is imported), so a new arrow back up
fails here, naming the importing file and what it imports.
"""

import ast
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
# The pipeline's commands: nothing below them imports them.
SCRIPTS = {"preprocess", "train", "img_test", "export", "bench"}
# Top-level modules that are libraries of the pipeline (the seed's file names), importable by packages.
PIPELINE_MODULES = {"dataset", "label_encoder", "label_decoder", "early_stopper"}
PACKAGES = {"models", "trainers", "inference", "evaluation", "benchmarks", "scripts", "helpers"}
# What each package may import from the project, besides itself; helpers is the bottom layer.
ALLOWED = {
    "helpers": set(),
    "models": {"helpers"},
    "evaluation": {"helpers"},
    "dataset": {"helpers"},
    "label_encoder": {"helpers"},
    "label_decoder": {"helpers", "label_encoder"},
    "early_stopper": {"helpers"},
    "trainers": {"helpers", "models", "evaluation", "dataset", "early_stopper"},
    # img_test's defaults are train.py's (trainers.options); trainers never import inference.
    "inference": {"helpers", "models", "evaluation", "trainers", "dataset", "label_encoder", "label_decoder"},
}


def project_imports(path: Path) -> set[str]:
    """The top-level project names a file imports (absolute imports only; the project uses no others)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names & (SCRIPTS | PIPELINE_MODULES | PACKAGES)


def layer_of(path: Path) -> str:
    relative = path.relative_to(REPO_ROOT)
    return relative.parts[0] if len(relative.parts) > 1 else relative.stem


def test_no_module_imports_a_layer_above_it():
    violations = []
    for path in sorted(REPO_ROOT.glob("*.py")) + sorted(REPO_ROOT.glob("*/**/*.py")):
        layer = layer_of(path)
        if layer not in ALLOWED:
            continue
        for imported in sorted(project_imports(path) - ALLOWED[layer] - {layer}):
            violations.append(f"{path.relative_to(REPO_ROOT)} imports {imported}")
    assert violations == []


def test_scripts_are_imported_by_no_pipeline_package():
    """benchmarks/ and scripts/ sit beside the commands (they time preprocess() and drive train.py); the
    packages the pipeline itself runs on never import a command."""
    for package in ALLOWED.keys() & PACKAGES:
        for path in (REPO_ROOT / package).rglob("*.py"):
            assert not project_imports(path) & SCRIPTS, path
