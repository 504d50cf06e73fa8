"""What pyproject.toml alone cannot express: package discovery, and the optional compiled core.

`signatures/` lives at the top of the repository (it is data, edited by people
who never open the code) but must install as `analyzer.signatures`, so that a
normal `pip install .` carries the catalogue inside the package.

The compiled core (core/, Rust): with cargo on PATH, `pip install .` builds it into
analyzer/native/_core*.so (a plain C ABI loaded with ctypes, so no Python binding crate).
Without a Rust toolchain its build is skipped with a warning, the package installs, and it
runs on the Python engine (`analyzer.native.notice()` says so once). `--offline`: the crate
has no dependencies, and crates.io may not be reachable.
"""

from setuptools import find_packages, setup

try:
    from setuptools_rust import Binding, RustExtension
except ImportError:  # a pip that ignored the build requirements: the Python engine only
    rust_extensions = []
else:
    rust_extensions = [
        RustExtension("analyzer.native._core", path="core/Cargo.toml", binding=Binding.NoBinding,
                      optional=True, args=["--offline"], debug=False),
    ]

setup(
    packages=find_packages(include=["analyzer", "analyzer.*"]) + ["analyzer.signatures"],
    package_dir={"analyzer.signatures": "signatures"},
    rust_extensions=rust_extensions,
)
