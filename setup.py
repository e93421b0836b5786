"""Package layout that pyproject.toml cannot state alone.

The shipped segmentation model stays in ``models/`` at the repository root (with its model card
and checksum) and is installed as the data-only package ``qperf._models``, which
``qperf.segmentation.model_store`` reads with ``importlib.resources``. ``packages.find`` cannot
map a package onto a folder outside ``qperf/``, so the package list is made here.
"""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages(include=["qperf", "qperf.*"]), "qperf._models"],
    package_dir={"qperf._models": "models"},
)
