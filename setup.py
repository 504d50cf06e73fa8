"""Package discovery that pyproject.toml alone cannot express.

`signatures/` lives at the top of the repository (it is data, edited by people
who never open the code) but must install as `analyzer.signatures`, so that a
normal `pip install .` carries the catalogue inside the package.
"""

from setuptools import find_packages, setup

setup(
    packages=find_packages(include=["analyzer", "analyzer.*"]) + ["analyzer.signatures"],
    package_dir={"analyzer.signatures": "signatures"},
)
