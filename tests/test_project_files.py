"""What an index and a citing reader need, present and consistent: licence, typing marker, package metadata,
citation file, changelog and install lines. (tests/test_wheels.py checks what the built wheels contain.)"""

import re
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).parents[1]
PACKAGES = {"imbalance": "imbalance", "mtl_distill": "mtl-distill", "affect_data": "affect-data"}
REPOSITORY = "https://github.com/affect-toolkit/affect-toolkit"


def test_licence_is_mit_and_every_package_ships_the_same_text():
    licence = (ROOT / "LICENSE").read_text()
    assert licence.startswith("MIT License\n\nCopyright (c) 2026 The affect-toolkit authors\n")
    for package in PACKAGES:
        assert (ROOT / "packages" / package / "LICENSE").read_text() == licence, package


@pytest.mark.parametrize("package", list(PACKAGES))
def test_package_metadata(package):
    folder = ROOT / "packages" / package
    pyproject = tomllib.loads((folder / "pyproject.toml").read_text())
    project = pyproject["project"]
    assert pyproject["build-system"]["requires"] == ["setuptools>=77"]
    assert project["name"] == PACKAGES[package]
    assert "version" not in project and project["dynamic"] == ["version"]
    assert pyproject["tool"]["setuptools"]["dynamic"]["version"] == {"attr": f"{package}.__version__"}
    assert (project["license"], project["license-files"]) == ("MIT", ["LICENSE"])
    assert project["authors"] == [{"name": "The affect-toolkit authors"}]
    assert project["urls"]["Repository"] == REPOSITORY and project["keywords"]
    assert "Typing :: Typed" in project["classifiers"]
    assert not any(c.startswith("License ::") for c in project["classifiers"])  # the SPDX expression says it
    assert (folder / "src" / package / "py.typed").is_file()
    assert pyproject["tool"]["setuptools"]["package-data"] == {package: ["py.typed"]}
    init = (folder / "src" / package / "__init__.py").read_text()
    assert len(re.findall(r"^__version__ = ", init, flags=re.MULTILINE)) == 1


def test_citation_file_cites_the_software_and_the_paper():
    citation = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert citation["cff-version"] == "1.2.0" and citation["type"] == "software"
    assert citation["license"] == "MIT" and citation["repository-code"] == REPOSITORY
    (paper,) = citation["references"]
    assert paper["title"] == "Multitask Emotion Recognition with Incomplete Labels" and paper["year"] == 2020
    assert [a["family-names"] for a in paper["authors"]] == ["Deng", "Chen", "Shi"]
    assert "FG 2020" in paper["collection-title"]


def test_changelog_has_an_unreleased_section():
    changelog = (ROOT / "CHANGELOG.md").read_text()
    assert "keepachangelog.com" in changelog
    assert re.search(r"^## \[Unreleased\]\n", changelog, flags=re.MULTILINE)


@pytest.mark.parametrize("package", ["imbalance", "affect_data"])
def test_readme_install_lines(package):
    readme = (ROOT / "packages" / package / "README.md").read_text()
    install = readme[readme.index("## Install") :].split("\n## ", 1)[0]
    assert re.search(
        rf"^pip install (packages/\w+ )*packages/{package}\b", install, flags=re.MULTILINE
    )  # a clone
    assert f"{REPOSITORY}.git#subdirectory=packages/{package}" in install  # a git URL
    assert f"pip install {PACKAGES[package]}\n" in install  # an index
