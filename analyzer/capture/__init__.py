"""Capture sources (pcap, pcapng, gzip) and the link/IP/L4 decode of every packet.

Typical use::

    reader = open_capture("trace.pcapng")   # CaptureError if not a capture
    decoder = Decoder()                      # fragment table + weird counter
    for raw in reader:
        packet = decoder(raw)                # Packet, or None (not IP, held fragment, malformed)
    decoder.finish()                         # incomplete datagrams count as timed out
    reader.weird + decoder.weird             # named anomalies, counted
"""

from analyzer.capture.decode import (
    LINK_DECODERS,
    WEIRDS,
    ArpFrame,
    Decoder,
    IcmpInfo,
    Packet,
    Quoted,
    decode,
    ip_bytes,
    ip_text,
    mac_text,
)
from analyzer.capture.ipfrag import FragmentTable
from analyzer.capture.reader import WEIRDS as READER_WEIRDS
from analyzer.capture.reader import CaptureReader, ProcessInfo, RawPacket, linktype_name, open_capture

__all__ = [
    "LINK_DECODERS",
    "READER_WEIRDS",
    "WEIRDS",
    "ArpFrame",
    "CaptureReader",
    "Decoder",
    "FragmentTable",
    "IcmpInfo",
    "Packet",
    "ProcessInfo",
    "Quoted",
    "RawPacket",
    "decode",
    "ip_bytes",
    "ip_text",
    "linktype_name",
    "mac_text",
    "open_capture",
]
