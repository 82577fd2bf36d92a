"""affect_data's imports: every module it imports is the standard library, itself, or a requirement of its
pyproject, except the ``video`` extra's (PyAV and facenet-pytorch), which only :mod:`affect_data.video`
imports, inside the functions that need them, and whose absence is an ImportError naming the extra. So no
import can fail with a bare ``No module named ...`` in an installation that pip resolved."""

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


#: The ``video`` extra's modules and their distributions (the only optional imports).
VIDEO_MODULES = {"av": "av", "facenet_pytorch": "facenet-pytorch"}


def _names(requirements: list[str]) -> set[str]:
    return {re.match(r"[A-Za-z0-9_.-]+", r).group().lower().replace("_", "-") for r in requirements}


def test_every_third_party_import_is_a_declared_requirement():
    project = tomllib.loads((PACKAGE / "pyproject.toml").read_text())["project"]
    assert set(project["optional-dependencies"]) == {"video"}
    assert _names(project["optional-dependencies"]["video"]) == set(VIDEO_MODULES.values())
    declared = _names(project["dependencies"]) | set(VIDEO_MODULES.values())
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


def test_the_video_extra_is_imported_only_where_it_is_needed():
    source = (PACKAGE / "src" / "affect_data" / "video.py").read_text()
    top_level = ast.parse(source).body  # module-level statements: the extra must not be among them
    for node in top_level:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            assert not any(n.partition(".")[0] in VIDEO_MODULES for n in names), ast.unparse(node)
    for module, where in _imported_top_levels().items():
        if module in VIDEO_MODULES:
            assert where == "src/affect_data/video.py", f"{where} imports {module} of the video extra"


@pytest.mark.parametrize("module", sorted(VIDEO_MODULES))
def test_a_missing_video_extra_is_an_error_that_names_it(module, monkeypatch, tmp_path):
    from affect_data import video

    for name in [name for name in sys.modules if name == module or name.startswith(f"{module}.")]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, module, None)  # `import` now fails as when it is not installed
    (tmp_path / "clip.mp4").write_bytes(b"not read")
    with pytest.raises(ImportError, match=r'pip install "affect-data\[video\]"'):
        video.FrameReader(tmp_path / "clip.mp4") if module == "av" else video.MTCNNDetector()
