"""The three packages build as wheels an index would accept, and install side by side in a fresh environment.

Offline: the wheels are built with the setuptools of this environment (``--no-build-isolation``; the dev
group pins ``setuptools>=77``) from copies of the package folders, so the checkout gets no build artefacts.
The fresh virtual environment gets the wheels with ``--no-deps`` and sees the test environment's
site-packages behind its own (for numpy, pandas, torch), without its editable installs; the dependency
ranges are then checked against the installed versions from the wheels' metadata.
"""

import importlib.metadata
import json
import re
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
PACKAGES = {"imbalance": "imbalance", "mtl_distill": "mtl-distill", "affect_data": "affect-data"}

pytestmark = pytest.mark.slow


def _run(*command: str | Path, **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run([str(c) for c in command], capture_output=True, text=True, timeout=300, **kwargs)
    assert result.returncode == 0, f"{command}\n{result.stdout}\n{result.stderr}"
    return result


def _source_version(package: str) -> str:
    init = (ROOT / "packages" / package / "src" / package / "__init__.py").read_text()
    return re.search(r'^__version__ = "([^"]+)"$', init, flags=re.MULTILINE).group(1)


@pytest.fixture(scope="module")
def wheels(tmp_path_factory) -> dict[str, Path]:
    setuptools = tuple(int(part) for part in importlib.metadata.version("setuptools").split(".")[:2])
    assert setuptools >= (77, 0), "the dev dependency group installs setuptools>=77, the build backend"
    work = tmp_path_factory.mktemp("wheels")
    ignore = shutil.ignore_patterns("*.egg-info", "build", "dist", "__pycache__")
    sources = [shutil.copytree(ROOT / "packages" / p, work / "src" / p, ignore=ignore) for p in PACKAGES]
    out = work / "dist"
    pip_wheel = ["-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q", "-w", out]
    _run(sys.executable, *pip_wheel, *sources)
    built = {package: next(out.glob(f"{package}-*.whl")) for package in PACKAGES}
    assert len(list(out.glob("*.whl"))) == 3
    return built


@pytest.mark.parametrize("package", list(PACKAGES))
def test_wheel_ships_the_licence_and_py_typed(wheels, package):
    version = _source_version(package)
    assert wheels[package].name == f"{package}-{version}-py3-none-any.whl"  # one source for the version
    with zipfile.ZipFile(wheels[package]) as wheel:
        names = set(wheel.namelist())
        info = f"{package}-{version}.dist-info"
        assert f"{package}/py.typed" in names
        assert wheel.read(f"{info}/licenses/LICENSE") == (ROOT / "LICENSE").read_bytes()
        metadata = wheel.read(f"{info}/METADATA").decode()
    assert f"Name: {PACKAGES[package]}\nVersion: {version}\n" in metadata
    assert "License-Expression: MIT" in metadata and "Author: The affect-toolkit authors" in metadata
    for field in ("Project-URL: Repository, ", "Keywords: ", "Classifier: Typing :: Typed"):
        assert field in metadata


def test_wheels_install_side_by_side_in_a_fresh_environment(wheels, tmp_path):
    env = tmp_path / "env"
    _run(sys.executable, "-m", "venv", "--without-pip", env)
    python = env / "bin" / "python"
    pip_install = ["-m", "pip", "--python", python, "install", "--no-deps", "--no-index", "-q"]
    _run(sys.executable, *pip_install, *wheels.values())
    fresh_site = Path(
        _run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").stdout.strip()
    )
    # numpy, pandas, torch... from the test environment, behind the fresh site-packages. A plain path entry:
    # the editable installs' .pth files there are not processed: the packages can only come from the wheels.
    (fresh_site / "test-environment.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    script = (
        "import importlib.metadata as md, json, imbalance, affect_data, mtl_distill\n"
        "print(json.dumps({\n"
        "    'files': [m.__file__ for m in (imbalance, affect_data, mtl_distill)],\n"
        "    'versions': {d: md.version(d) for d in ('imbalance', 'affect-data', 'mtl-distill')},\n"
        "    'requires': md.requires('affect-data'),\n"
        "    'module_versions': [m.__version__ for m in (imbalance, affect_data, mtl_distill)],\n"
        "}))\n"
    )
    found = json.loads(_run(python, "-c", script, cwd=tmp_path).stdout)
    assert all(Path(file).is_relative_to(fresh_site) for file in found["files"]), found["files"]
    assert found["module_versions"] == [
        found["versions"][d] for d in ("imbalance", "affect-data", "mtl-distill")
    ]
    (requirement,) = [r for r in found["requires"] if re.match(r"imbalance\b", r)]
    bounds = dict(re.findall(r"(>=|<)([\d.]+)", requirement))
    installed = _release(found["versions"]["imbalance"])
    assert _release(bounds[">="]) <= installed < _release(bounds["<"]), (requirement, installed)


def _release(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))
