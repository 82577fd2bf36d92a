"""affect_data's imports: every module it imports is the standard library, itself, or a requirement of its
pyproject, except its extras': the ``video`` extra's (PyAV and facenet-pytorch), which only
:mod:`affect_data.video` imports, and the ``plot`` extra's (matplotlib), which only
:mod:`affect_data.prediction` imports, each inside the functions that need them, and whose absence is an
ImportError naming the extra. So no import can fail with a bare ``No module named ...`` in an installation
that pip resolved, and ``affect_data.prediction`` imports without either extra."""

import ast
import importlib
import importlib.metadata
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pandas as pd
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


#: The ``video`` extra's modules and their distributions.
VIDEO_MODULES = {"av": "av", "facenet_pytorch": "facenet-pytorch"}
#: The ``plot`` extra's. With the video extra's, the only optional imports.
PLOT_MODULES = {"matplotlib": "matplotlib"}
#: Each extra: its modules, and the one module of affect_data that imports them (inside functions).
EXTRAS = {"video": (VIDEO_MODULES, "video.py"), "plot": (PLOT_MODULES, "prediction.py")}


def _names(requirements: list[str]) -> set[str]:
    return {re.match(r"[A-Za-z0-9_.-]+", r).group().lower().replace("_", "-") for r in requirements}


def test_every_third_party_import_is_a_declared_requirement():
    project = tomllib.loads((PACKAGE / "pyproject.toml").read_text())["project"]
    assert set(project["optional-dependencies"]) == set(EXTRAS)
    for extra, (modules, _) in EXTRAS.items():
        assert _names(project["optional-dependencies"][extra]) == set(modules.values()), extra
    declared = _names(project["dependencies"]).union(*(modules.values() for modules, _ in EXTRAS.values()))
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


@pytest.mark.parametrize("extra", sorted(EXTRAS))
def test_an_extra_is_imported_only_where_it_is_needed(extra):
    modules, home = EXTRAS[extra]
    optional = set(VIDEO_MODULES) | set(PLOT_MODULES)
    for path in sorted((PACKAGE / "src" / "affect_data").rglob("*.py")):
        # Module-level statements of every module (video.py and prediction.py included): no extra among them.
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                assert not any(n.partition(".")[0] in optional for n in names), f"{path}: {ast.unparse(node)}"
    for module, where in _imported_top_levels().items():
        if module in modules:
            assert where == f"src/affect_data/{home}", f"{where} imports {module} of the {extra} extra"


def test_prediction_imports_without_the_extras():
    code = (
        "import sys\n"
        "for name in ('av', 'facenet_pytorch', 'matplotlib'):\n"
        "    sys.modules[name] = None  # `import` now fails as when it is not installed\n"
        "import affect_data.prediction, affect_data.video\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("module", sorted(VIDEO_MODULES))
def test_a_missing_video_extra_is_an_error_that_names_it(module, monkeypatch, tmp_path):
    from affect_data import video

    for name in [name for name in sys.modules if name == module or name.startswith(f"{module}.")]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, module, None)  # `import` now fails as when it is not installed
    (tmp_path / "clip.mp4").write_bytes(b"not read")
    with pytest.raises(ImportError, match=r'pip install "affect-data\[video\]"'):
        video.FrameReader(tmp_path / "clip.mp4") if module == "av" else video.MTCNNDetector()


def test_a_missing_plot_extra_is_an_error_that_names_it(monkeypatch, tmp_path):
    from affect_data import prediction

    for name in [name for name in sys.modules if name == "matplotlib" or name.startswith("matplotlib.")]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    table = {"frame": [0], "time_s": [0.0], "face_found": [False]}
    with pytest.raises(ImportError, match=r'pip install "affect-data\[plot\]"'):
        prediction.plot_predictions(pd.DataFrame(table), tmp_path / "p.png")
