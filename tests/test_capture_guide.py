"""`apple-net capture-guide`: the printed commands parse as Apple's tcpdump parses them, the text fits
80 columns, the README shows the same commands, and the engine reads what those commands write.

The commands cannot run here (no macOS), so they are checked against a table of Apple's tcpdump
options, taken from two files of apple-open-source/macos (found with the search tool):

- tcpdump/tcpdump/tcpdump.c, `#define SHORTOPTS` under __APPLE__:
  "aAb" "B:" "c:C:d" "D" "eE:fF:" "g" "G:hHi:" "I" "j:" "J" "k" "KlLm:M:nN" "o" "Op" "P" "q" "Q:"
  "r:s:StT:u" "U" "vV:w:W:xXy:Yz:Z:#", and its `case 'k'` / `case 't'`: both look at the *next*
  word and take it only if it is made of their letters (-k: ACDFINPSUVftd; -t: a digit 0-5);
- tcpdump/tcpdump/tcpdump.1 (dated 21 December 2020): the same options, the Apple additions
  -k/--apple-md-print, -Q/--apple-md-filter, -P/--apple-pcapng, -g/--apple-oneline, and
  "-i pktap[,IF...]", "all" or "pktap,all".

A typo in an option letter, a missing argument or an argument glued to -k fails these tests.
"""

from __future__ import annotations

import re
import shlex
import struct
import sys
from pathlib import Path

import pytest

import analyzer
from analyzer.cli import main
from analyzer.cli.capture_guide import DEVICES, capture_guide, iphone_commands, mac_commands
from analyzer.errors import AnalyzerError

ROOT = Path(__file__).resolve().parents[1]
CRAFTED = ROOT / "tests" / "fixtures" / "crafted"
SAMPLE = ROOT / "samples" / "mixed_session.pcap"

# Apple's SHORTOPTS, split: letters that take an argument, letters that take none.
APPLE_SHORTOPTS = "aAbB:c:C:dDeE:fF:gG:hHi:Ij:JkKlLm:M:nNoOpPqQ:r:s:StT:uUvV:w:W:xXy:Yz:Z:#"
TAKES_ARG = {m[0] for m in re.findall(r".:", APPLE_SHORTOPTS)}
NO_ARG = set(APPLE_SHORTOPTS.replace(":", "")) - TAKES_ARG
K_LETTERS = set("ACDFINPSUVftd")  # tcpdump.c, case 'k'
LONG_OPTS = {  # tcpdump.c longopts: name -> takes an argument (k's is optional, the next word)
    "buffer-size": True, "interface": True, "snapshot-length": True, "direction": True,
    "apple-md-print": None, "apple-md-filter": True, "apple-pcapng": False, "apple-oneline": False,
    "packet-buffered": False, "immediate-mode": False, "print": False, "version": False,
}


def parse_tcpdump(argv: list[str]) -> tuple[dict[str, list[str]], list[str]]:
    """Parse tcpdump's arguments the way Apple's getopt_long loop does: options -> values, and the
    words left over (the filter expression). Raises ValueError on an option Apple's tcpdump lacks."""
    opts: dict[str, list[str]] = {}
    i = 0
    while i < len(argv):
        word = argv[i]
        if word == "--":
            return opts, argv[i + 1:]
        if word.startswith("--"):
            name, eq, val = word[2:].partition("=")
            if name not in LONG_OPTS:
                raise ValueError(f"unknown long option {word}")
            if LONG_OPTS[name] and not eq:
                i += 1
                if i >= len(argv):
                    raise ValueError(f"{word} needs an argument")
                val = argv[i]
            opts.setdefault(name, []).append(val)
            i += 1
            continue
        if not word.startswith("-") or word == "-":
            return opts, argv[i:]  # getopt stops here; the rest is the filter expression
        j = 1
        while j < len(word):
            letter = word[j]
            if letter in TAKES_ARG:
                val = word[j + 1:]
                if not val:
                    i += 1
                    if i >= len(argv):
                        raise ValueError(f"-{letter} needs an argument")
                    val = argv[i]
                opts.setdefault(letter, []).append(val)
                break
            if letter not in NO_ARG:
                raise ValueError(f"-{letter} is not an option of Apple's tcpdump")
            opts.setdefault(letter, []).append("")
            j += 1
        else:
            # -k (and -t) at the end of a word may take the next word, if it is made of their letters.
            if word[-1] == "k" and i + 1 < len(argv) and argv[i + 1] and set(argv[i + 1]) <= K_LETTERS:
                i += 1
                opts["k"][-1] = argv[i]
        i += 1
    return opts, []


def tcpdump_lines(text: str) -> list[list[str]]:
    out = []
    for line in text.splitlines():
        command = line.startswith("    ") and line.strip().startswith(("sudo ", "tcpdump "))
        words = shlex.split(line) if command else []
        if words[:1] == ["sudo"]:
            words = words[1:]
        if words[:1] == ["tcpdump"]:
            out.append(words[1:])
    return out


def check_capture_command(argv: list[str]) -> dict[str, list[str]]:
    opts, expression = parse_tcpdump(argv)
    assert expression == [], f"stray words {expression} would become a capture filter"
    if "w" in opts:
        assert opts["w"][0].endswith(".pcapng"), "pktap and -P captures are pcapng"
        iface = opts["i"][0]
        assert re.fullmatch(r"pktap(,(all|[a-z]+\d*))*|all|rvi\d+", iface), iface
        assert iface.startswith("pktap") or "P" in opts, "only pktap writes pcapng without -P"
        if "G" in opts:
            assert int(opts["G"][0]) > 0 and opts["W"] == ["1"], "-G N -W 1 stops after N seconds"
    else:
        assert "r" in opts and "k" in opts, "the check command reads the file and prints metadata"
        assert opts["k"][0] and set(opts["k"][0]) <= K_LETTERS, "-k's letters are a separate word"
    return opts


# -- the parser itself catches what it must --------------------------------------------------------

@pytest.mark.parametrize("argv, error", [
    (["-i", "pktap,all", "-x", "-w", "f.pcapng", "-j"], "-j needs an argument"),
    (["-i", "pktap,all", "-R", "-w", "f.pcapng"], "-R is not an option"),
    (["--apple-pcapgn", "-w", "f.pcapng"], "unknown long option"),
    (["-i"], "-i needs an argument"),
])
def test_parser_rejects_what_apples_tcpdump_rejects(argv: list[str], error: str) -> None:
    with pytest.raises(ValueError, match=error):
        parse_tcpdump(argv)


def test_parser_reads_k_as_apples_tcpdump_does() -> None:
    assert parse_tcpdump(["-n", "-k", "NP", "-r", "f"])[0]["k"] == ["NP"]
    # Glued letters are read as more options: -kNP is -k -N -P, not -k with NP.
    assert parse_tcpdump(["-kNP", "-r", "f"])[0] == {"k": [""], "N": [""], "P": [""], "r": ["f"]}
    # A word that is not made of metadata letters stays the filter expression.
    assert parse_tcpdump(["-k", "port", "443"]) == ({"k": [""]}, ["port", "443"])
    with pytest.raises(AssertionError):
        check_capture_command(["-i", "pktap,all", "-w", "f.pcapng", "port", "443"])
    with pytest.raises(AssertionError):
        check_capture_command(["-i", "en0", "-w", "f.pcapng"])  # no pktap, no -P: not pcapng


# -- the guide's commands ------------------------------------------------------------------------

@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("seconds", [60, 300, 3600])
def test_every_printed_tcpdump_command_parses(device: str, seconds: int) -> None:
    text = capture_guide(device, seconds)
    lines = tcpdump_lines(text)
    assert len(lines) == 3  # capture, timed capture, check
    parsed = [check_capture_command(argv) for argv in lines]
    timed = [o for o in parsed if "G" in o]
    assert [o["G"] for o in timed] == [[str(seconds)]]
    commands = mac_commands(seconds) if device == "mac" else iphone_commands(seconds)
    for command in commands.values():
        assert "    " + command in text.splitlines()


def test_mac_capture_uses_pktap_on_every_interface() -> None:
    opts = parse_tcpdump(shlex.split(mac_commands()["capture"])[2:])[0]
    assert opts == {"i": ["pktap,all"], "w": ["~/Desktop/apple-net.pcapng"]}


def test_iphone_capture_uses_the_remote_virtual_interface() -> None:
    c = iphone_commands()
    assert shlex.split(c["start_rvi"]) == ["rvictl", "-s", "UDID"]
    assert shlex.split(c["stop_rvi"]) == ["rvictl", "-x", "UDID"]
    opts = parse_tcpdump(shlex.split(c["capture"])[2:])[0]
    assert opts["i"] == ["rvi0"] and opts["P"] == [""]


@pytest.mark.parametrize("device", DEVICES)
def test_text_fits_80_columns_and_says_what_was_asked(device: str) -> None:
    text = capture_guide(device, 300)
    assert max(len(line) for line in text.splitlines()) <= 80
    assert text.isascii()
    words = " ".join(text.split())
    for needed in ("Control-C", "5 minutes", "App Store", "Software Update", "iCloud",
                   "apsd", "softwareupdated", "akd", "mdmclient"):
        assert needed in words, needed
    if device == "mac":
        assert "Wireshark" in words and "sysdiagnose" in words and "Darwin systems version 13" in words
    else:
        assert "iOS 5 or later" in words and "rvi0" in words


def test_cli_prints_the_library_text(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["capture-guide", "--device", "iphone", "--seconds", "120"]) == 0
    assert capsys.readouterr().out == capture_guide("iphone", 120)
    out = tmp_path / "guide.txt"
    assert main(["capture-guide", "-o", str(out)]) == 0
    assert out.read_text() == capture_guide()


def test_bad_arguments_are_one_line_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["capture-guide", "--seconds", "0"]) == 2
    assert capsys.readouterr().err.strip() == "apple-net: error: --seconds must be between 10 and 86400"
    with pytest.raises(AnalyzerError):
        capture_guide("android")


# -- the README says the same ------------------------------------------------------------------

def test_readme_commands_are_the_guides() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("### `apple-net capture-guide", 1)[1].split("\n### ", 1)[0]
    shown = [line.strip() for line in section.splitlines()
             if line.strip().startswith(("sudo tcpdump", "tcpdump ", "rvictl ", "apple-net "))]
    assert len(shown) >= 6
    guides = capture_guide("mac") + capture_guide("iphone")
    for command in shown:
        assert "    " + command in guides.splitlines(), f"README shows a command the guide does not: {command}"


# -- the engine reads what those commands write ---------------------------------------------------

@pytest.mark.parametrize("name", ["pktap.pcap", "darwin_process.pcapng"])
def test_engine_reads_process_names_from_apple_captures(name: str) -> None:
    # Hand-built fixtures (make_crafted.py) in the two formats the commands write: PKTAP link type,
    # and pcapng with Darwin process blocks. Neither holds a failure, so no finding: the flows
    # carry the names.
    a = analyzer.analyze(CRAFTED / name)
    names = {p["name"] for f in a.report["flows"] for p in f["processes"]}
    assert {"apsd", "softwareupdated"} <= names
    seen = [(f["server"]["port"], [p["name"] for p in f["processes"]]) for f in a.report["flows"]]
    assert (5223, ["apsd"]) in seen and (443, ["softwareupdated"]) in seen


def _as_pktap(src: Path, dst: Path) -> None:
    """Rewrite a real Ethernet capture as macOS's tcpdump -i pktap would have recorded it: each
    frame behind a PKTAP header naming its process. Push (TCP 5223) is apsd, DNS is
    mDNSResponder, everything else akd."""
    sys.path.insert(0, str(CRAFTED))
    try:
        from make_crafted import pktap_header
    finally:
        sys.path.remove(str(CRAFTED))
    data = src.read_bytes()
    magic, vmaj, vmin, zone, sigfigs, snaplen, linktype = struct.unpack("<IHHiIII", data[:24])
    assert (magic, linktype) == (0xA1B2C3D4, 1)
    out = [struct.pack("<IHHiIII", magic, vmaj, vmin, zone, sigfigs, snaplen, 258)]
    off = 24
    while off < len(data):
        sec, usec, incl, orig = struct.unpack("<IIII", data[off:off + 16])
        frame = data[off + 16:off + 16 + incl]
        off += 16 + incl
        ports = set()
        if frame[12:14] == b"\x08\x00" and frame[23] in (6, 17):
            ihl = (frame[14] & 0x0F) * 4
            ports = set(struct.unpack("!HH", frame[14 + ihl:18 + ihl]))
        proc = "apsd" if 5223 in ports else "mDNSResponder" if 53 in ports else "akd"
        head = pktap_header(1, {"apsd": 101, "mDNSResponder": 102, "akd": 103}[proc], proc)
        out.append(struct.pack("<IIII", sec, usec, incl + len(head), orig + len(head)) + head + frame)
    dst.write_bytes(b"".join(out))


def test_findings_name_the_daemon_that_failed(tmp_path: Path) -> None:
    # samples/mixed_session.pcap is a real lab capture (tcpdump in network namespaces) with
    # blocked, reset and refused Apple services; as a PKTAP capture its findings name processes.
    pktap = tmp_path / "mixed_session_pktap.pcap"
    _as_pktap(SAMPLE, pktap)
    plain = analyzer.analyze(SAMPLE)
    a = analyzer.analyze(pktap)
    # The same answer as without process names, with the names added.
    strip = re.compile(r" \((process|processes) [^)]*\)$")
    assert [strip.sub("", f.message) for f in a.diagnosis.findings] == [f.message for f in plain.diagnosis.findings]
    msgs = {f.message.split(" ", 1)[0]: f for f in a.diagnosis.findings}
    gsa = msgs["gsa.apple.com"]
    assert gsa.message.endswith("is blocked (process akd)")
    assert "process on the device: akd (from the capture's process metadata)" in gsa.evidence
    # Push failed on 5223 only (443 works): the failed flows are apsd's, so only apsd is named.
    push = msgs["*.push.apple.com"]
    assert push.message.endswith("(process apsd)") and "akd" not in push.message
    # DNS-only failures had no connection, so no process is claimed for them.
    assert not any("mDNSResponder" in f.message for f in a.diagnosis.findings)


def test_terminal_answer_shows_the_daemon(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    pktap = tmp_path / "mixed_session_pktap.pcap"
    _as_pktap(SAMPLE, pktap)
    monkeypatch.setenv("COLUMNS", "200")
    main(["analyze", str(pktap)])
    out = " ".join(capsys.readouterr().out.split())
    assert "is blocked (process akd)" in out and "(process apsd)" in out
    assert "process on the device: akd (from the capture's process metadata)" in out
