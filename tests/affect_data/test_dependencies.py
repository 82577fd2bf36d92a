"""affect_data has no optional dependency: every module it imports is the standard library, itself, or a
requirement of its pyproject, so no import can fail with a bare ``No module named ...`` in an installation
that pip resolved. (imbalance and mtl_distill name the extra to install: see their
``test_optional_dependencies.py``.)"""

import ast
import importlib
import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parents[2] / "packages" / "affect_data"


def _imported_top_levels() -> dict[str, str]:
    """Top-level module -> the first file that imports it, over every module of the package."""
    found: dict[str, str] = {}
    for path in sorted((PACKAGE / "src" / "affect_data").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                found.setdefault(name.partition(".")[0], str(path.relative_to(PACKAGE)))
    return found


def test_every_third_party_import_is_a_declared_requirement():
    project = tomllib.loads((PACKAGE / "pyproject.toml").read_text())["project"]
    assert "optional-dependencies" not in project
    declared = {
        re.match(r"[A-Za-z0-9_.-]+", r).group().lower().replace("_", "-") for r in project["dependencies"]
    }
    distributions = importlib.metadata.packages_distributions()
    for module, where in _imported_top_levels().items():
        if module in sys.stdlib_module_names or module == "affect_data":
            continue
        names = {d.lower().replace("_", "-") for d in distributions.get(module, [module])}
        assert names & declared, f"{where} imports {module} ({names}), which pyproject.toml does not require"


@pytest.mark.parametrize(
    ("distribution", "module"), [("imbalance", "imbalance"), ("mtl-distill", "mtl_distill")]
)
def test_requirements_on_sibling_packages_admit_the_versions_of_this_repository(distribution, module):
    dependencies = tomllib.loads((PACKAGE / "pyproject.toml").read_text())["project"]["dependencies"]
    (requirement,) = [r for r in dependencies if re.match(rf"{distribution}\b", r)]
    bounds = dict(re.findall(r"(>=|<)([\d.]+)", requirement))
    assert set(bounds) == {">=", "<"}, f"{requirement}: a range with both ends"
    package = importlib.import_module(module)
    version = tuple(int(part) for part in package.__version__.split("."))
    assert tuple(map(int, bounds[">="].split("."))) <= version < tuple(map(int, bounds["<"].split(".")))
