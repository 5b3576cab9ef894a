"""Packaging: `lab` and its subpackages, with the sample domain (the checkout's data/ folder) as `lab.sample_data`.

The project's metadata and dependencies are in pyproject.toml; this file only adds the package mapping, which
pyproject.toml's automatic package discovery cannot express.
"""

from setuptools import find_namespace_packages, setup

setup(
    packages=[*find_namespace_packages(include=["lab", "lab.*"]), "lab.sample_data"],
    package_dir={"lab.sample_data": "data"},
)
