"""Packaging metadata: what ``pip install`` reads from pyproject.toml."""

from __future__ import annotations

import tomllib
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent


def test_metadata_is_read_without_deprecation_warnings(monkeypatch):
    # warnings are errors in the test run: setuptools' deprecation of the licence table fails
    from setuptools.config.pyprojecttoml import apply_configuration
    from setuptools.dist import Distribution

    monkeypatch.chdir(ROOT)
    dist = apply_configuration(Distribution(), ROOT / "pyproject.toml")
    assert dist.metadata.license_expression == "BSD-3-Clause"
    assert dist.metadata.name == "galaxalign-astro"


def test_build_requires_a_setuptools_that_knows_spdx_licences():
    build = tomllib.loads((ROOT / "pyproject.toml").read_text())["build-system"]
    (setuptools,) = [Requirement(r) for r in build["requires"] if r.startswith("setuptools")]
    # setuptools 77 is the first to read `license = "<SPDX expression>"`
    assert not setuptools.specifier.contains("76.9")
    assert setuptools.specifier.contains("77.0")
