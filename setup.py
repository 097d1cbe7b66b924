"""Build-time layout: the top-level fixtures/ and tests/contract/ folders ship inside the package.

pyproject.toml cannot combine package discovery with a folder mapped to a package name, so the package list is
made here: everything under emulators, clients and contracts, plus the two mapped folders.
"""

from setuptools import find_namespace_packages, setup

# Package name -> folder in the source tree. Loaded with importlib.resources (emulators.kit.resources) and by
# `benchtwin contract` (contracts.runner), so an installed package runs what a checkout runs.
MAPPED_FOLDERS = {
    "emulators.fixtures": "fixtures",
    "contracts.suites": "tests/contract",
}


def mapped_packages() -> list[str]:
    """Each mapped folder and its sub-folders, as package names (sub-folders of data are packages too)."""
    names = []
    for package, folder in MAPPED_FOLDERS.items():
        names += [package, *(f"{package}.{sub}" for sub in find_namespace_packages(where=folder))]
    return names


setup(
    packages=[*find_namespace_packages(include=["emulators*", "clients*", "contracts*"]), *mapped_packages()],
    package_dir=MAPPED_FOLDERS,
)
