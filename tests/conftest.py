"""Suite-wide setting: without the compiled core, the tests run on the Python engine by choice.

A machine without Rust installs the package without its core, and every `apple-net` run
then says so in one line on stderr (tests/test_native_fallback.py checks that line). Tests
that compare a command's stderr word for word would trip on it, so where the core is
missing the suite chooses the Python engine explicitly (APPLE_NET_ENGINE=python, which its
subprocesses inherit): same results, no notice. Where the core is built nothing changes.
"""

from __future__ import annotations

import os

from analyzer import native

if not native.available():
    os.environ.setdefault("APPLE_NET_ENGINE", "python")
