"""Issue 15: the compiled core and the Python engine agree on every lab capture, as captured and rewritten.

Real software's traffic (nginx, squid, mitmproxy, chrony, iptables REJECT/DROP...) is where
the TCP state machine meets what a unit test would not think of; each capture is also
compared as a one-way tap, a 96-byte snaplen, a doubling span port, a VLAN trunk and pcapng
would have recorded it (tests/native_diff.py `rewrites`).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
from test_lab_engine import NAMES

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: the engines' comparison is shared
from native_diff import differences, need_core, results, rewrites

pytestmark = pytest.mark.lab


@pytest.mark.parametrize("name", NAMES)
def test_both_engines_agree_on_the_lab_capture_and_its_rewrites(lab: Any, name: str, tmp_path: Path) -> None:
    need_core()
    pcap = Path(lab.results[name].pcap)
    assert differences(*results([pcap])) == []
    copies = rewrites(pcap.read_bytes())
    assert copies, f"{pcap} is not a little-endian pcap"
    for kind, blob in copies.items():
        p = tmp_path / f"{kind}.pcap"
        p.write_bytes(blob)
        assert differences(*results([p])) == [], kind
