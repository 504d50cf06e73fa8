"""`apple-net capture-guide`: how to take a capture the analyzer can use, from a Mac or an iPhone/iPad.

`capture_guide(device, seconds)` returns the text (80 columns); the subcommand prints it. Every
command in it was checked against Apple's own sources, found with the search tool:

- Apple's tcpdump man page, `tcpdump/tcpdump/tcpdump.1` in apple-open-source/macos (its .TH line
  is dated 21 December 2020). `-i pktap,IF,...` captures several interfaces through the PKTAP
  pseudo-interface; "all" or "pktap,all" captures every interface, loopback and tunnels included;
  a pktap capture carries packet metadata and "files are written in the Pcap-ng file format".
  `-k [metadata_arg]` prints that metadata (N process name, P pid, I interface, ...), `-Q expr`
  filters on it (proc, pid, if, dir, ...), `-P` writes pcapng for any interface; all three are
  marked "an Apple addition/modification". `-G secs -W 1` stops after one rotation period.
- Apple's tcpdump.c (same repository, `tcpdump/tcpdump/tcpdump.c`): SHORTOPTS under __APPLE__
  and the `case 'k'` parser: `-k` takes the *next word* as its argument only if that word is made
  of the metadata letters (ACDFINPSUVftd), so `-k NP` is right and `-kNP` is not.
- Apple's Technical Q&A QA1176 "Getting a Packet Trace",
  https://developer.apple.com/library/archive/qa/qa1176/_index.html (last revised 2016-08-30):
  the remote virtual interface (RVI) needs iOS 5 or later, `rvictl` comes with Xcode 4.2 or later,
  a device on iOS 7 or later needs the RVI support of Xcode 5.0 or later, which "works best on
  macOS 10.9 and later"; `rvictl -s UDID` makes `rvi0`, `rvictl -x UDID` removes it; the
  interface is recorded in the packet metadata, shown with `-k` and filtered with `-Q`.
- Apple's "Recording a Packet Trace",
  https://developer.apple.com/documentation/network/recording_a_packet_trace (the same methods).

macOS versions, as far as these sources say: the man page ties the default pseudo-interface to
"Darwin systems version 13 or later" (Darwin 13 is OS X 10.9); QA1176 mentions `-k` and `-Q` in
its 2016-08-30 revision, so they existed by then. For the first release with `pktap,all`, `-k`,
`-Q` and `-P` the sources are silent; the guide says so instead of guessing.

Without the Terminal: the sysdiagnose(1) man pages we found (macOS 10.14,
https://unix.com/man-page/mojave/1/sysdiagnose/) list "Network status" but no packet-capture
option, so the guide does not offer sysdiagnose. Wireshark reads the process names tcpdump
records (display filter field pcapng.darwin.process_name, Wireshark 4.2.0 and later:
https://www.wireshark.org/docs/dfref/p/pcapng.darwin.html); no source we found says that
Wireshark's own capture on a Mac records them, so the guide says its capture has none.
"""

from __future__ import annotations

import argparse
import textwrap
from typing import Any

from analyzer.cli.output import write_text
from analyzer.errors import AnalyzerError

WIDTH = 80
DEVICES = ("mac", "iphone")
DEFAULT_SECONDS = 300
MAC_FILE = "~/Desktop/apple-net.pcapng"
IPHONE_FILE = "~/Desktop/apple-net-iphone.pcapng"

# The daemons whose failures users see, and what they do (named in findings when the capture has them).
DAEMONS = (
    ("apsd", "push notifications (APNs)"),
    ("softwareupdated", "software updates"),
    ("akd", "Apple Account sign-in"),
    ("mdmclient", "device management (MDM enrolment, commands)"),
)

SOURCES = (
    "Apple's tcpdump(1): apple-open-source/macos, tcpdump/tcpdump/tcpdump.1",
    "https://developer.apple.com/library/archive/qa/qa1176/_index.html",
    "https://developer.apple.com/documentation/network/recording_a_packet_trace",
)


def mac_commands(seconds: int = DEFAULT_SECONDS) -> dict[str, str]:
    """The Mac guide's commands by purpose, exactly as printed."""
    return {
        "capture": f"sudo tcpdump -i pktap,all -w {MAC_FILE}",
        "timed": f"sudo tcpdump -i pktap,all -G {seconds} -W 1 -w {MAC_FILE}",
        "check": f"tcpdump -n -k NP -c 5 -r {MAC_FILE}",
        "analyze": f"apple-net analyze {MAC_FILE}",
    }


def iphone_commands(seconds: int = DEFAULT_SECONDS) -> dict[str, str]:
    """The iPhone/iPad guide's commands by purpose, exactly as printed (UDID is a placeholder)."""
    return {
        "start_rvi": "rvictl -s UDID",
        "capture": f"sudo tcpdump -i rvi0 -P -w {IPHONE_FILE}",
        "timed": f"sudo tcpdump -i rvi0 -P -G {seconds} -W 1 -w {IPHONE_FILE}",
        "stop_rvi": "rvictl -x UDID",
        "check": f"tcpdump -n -k IN -c 5 -r {IPHONE_FILE}",
        "analyze": f"apple-net analyze {IPHONE_FILE}",
    }


def _para(text: str, indent: str = "") -> str:
    return textwrap.fill(" ".join(text.split()), WIDTH, initial_indent=indent, subsequent_indent=indent)


def _item(text: str, bullet: str = "- ", indent: str = "   ") -> str:
    return textwrap.fill(" ".join(text.split()), WIDTH, initial_indent=indent + bullet,
                         subsequent_indent=indent + " " * len(bullet))


def _cmd(command: str) -> str:
    # Commands are never wrapped: a wrapped command cannot be pasted.
    return "    " + command


def _step(n: int, text: str) -> str:
    return textwrap.fill(" ".join(text.split()), WIDTH, initial_indent=f"{n}. ", subsequent_indent="   ")


def _title(text: str) -> str:
    return f"{text}\n{'=' * len(text)}"


def _minutes(seconds: int) -> str:
    if seconds % 60:
        return f"{seconds} seconds"
    m = seconds // 60
    return "1 minute" if m == 1 else f"{m} minutes"


def _daemons() -> list[str]:
    out = [_para("What the answer shows: when the capture carries process names, a finding names "
                 "the processes of the failed connections, so you see which daemon failed:"), ""]
    out += [f"    {name:<16} {what}" for name, what in DAEMONS]
    out += ["", _para("For example \"gsa.apple.com (...) is blocked (process akd)\", with the evidence "
                      "\"process on the Mac: akd (PKTAP capture)\". A capture without process names "
                      "gets the same answer without them.")]
    return out


def _mac(seconds: int) -> list[str]:
    c = mac_commands(seconds)
    return [
        _title("Capturing on a Mac for apple-net"),
        "",
        _para("macOS's own tcpdump can record, with every packet, the name of the process that sent "
              "or received it. Capture before you reproduce the problem: the analyzer ties a "
              "connection to an Apple service by the DNS answer and the TLS server name, which are "
              "sent only when the connection starts."),
        "",
        _step(1, "Start the capture in Terminal (it asks for an administrator password):"),
        "",
        _cmd(c["capture"]),
        "",
        _para("pktap,all captures every interface (Wi-Fi, Ethernet, loopback, VPN tunnels) through "
              "Apple's PKTAP pseudo-interface, which adds the process name and makes tcpdump write "
              "pcapng. If your tcpdump refuses \"pktap,all\", name the interfaces instead, e.g. "
              "-i pktap,en0 (networksetup -listallhardwareports lists them).", "   "),
        "",
        _step(2, f"While it runs, for about {_minutes(seconds)}, reproduce the problem:"),
        "",
        _item("turn Wi-Fi off and on (or unplug and replug the cable), so that push (apsd) and "
              "other daemons connect again and look names up again;"),
        _item("open the App Store and open an app's page or your purchases;"),
        _item("System Settings > General > Software Update (System Preferences > Software Update "
              "before macOS 13), and let it check;"),
        _item("enrol the Mac in device management, or retry it, the way your MDM says;"),
        _item("System Settings > your name (Apple Account) > iCloud: open it so the account is "
              "checked, and open Notes or Photos so they sync."),
        "",
        _step(3, "Stop: press Control-C in the Terminal window. tcpdump says how many packets it "
              "captured and how many the kernel dropped. To stop by itself after "
              f"{_minutes(seconds)} instead, start it like this:"),
        "",
        _cmd(c["timed"]),
        "",
        _step(4, "Check that process names were recorded (no sudo needed to read); each line should "
              "show a process name and pid:"),
        "",
        _cmd(c["check"]),
        "",
        _step(5, "Copy the file to where apple-net is installed and run:"),
        "",
        _cmd(c["analyze"]),
        "",
        _para("The file holds all of this Mac's traffic in that time: host names and addresses are "
              "readable, HTTPS contents are not. Share it only with whom you would show that."),
        "",
        _title("Without the Terminal"),
        "",
        _item("Wireshark on the Mac: choose the Wi-Fi or Ethernet interface, start, reproduce as in "
              "step 2, stop, File > Save As pcapng. The answer then names hosts but not processes: "
              "no source we found says Wireshark's own capture records process names (Wireshark "
              "4.2 and later does show the names in a file tcpdump wrote)."),
        _item("sysdiagnose: the man pages we found list \"Network status\" but no packet capture, "
              "so it is no substitute."),
        "",
        _title("Which macOS"),
        "",
        _item("-i pktap,...: the man page gives no version; it says that on \"Darwin systems "
              "version 13 or later\" (OS X 10.9 and later) tcpdump without -i already captures "
              "through a pseudo-interface."),
        _item("pktap,all, -k (show metadata), -Q (filter on it), -P (write pcapng): documented in "
              "Apple's man page; Apple's QA1176 used -k and -Q in 2016. The first macOS release "
              "with each: our sources do not say."),
        _item("-G and -W (stop after a time): standard tcpdump options in the same man page, not "
              "tried with pktap here."),
        "",
        *_daemons(),
    ]


def _iphone(seconds: int) -> list[str]:
    c = iphone_commands(seconds)
    return [
        _title("Capturing from an iPhone or iPad for apple-net"),
        "",
        _para("iOS and iPadOS cannot record a packet trace themselves; a Mac can, through the remote "
              "virtual interface (RVI), which shows the device's whole networking stack as one "
              "interface on the Mac. It needs iOS 5 or later, a Mac with Xcode "
              "(rvictl comes with it; a device on iOS 7 or later needs Xcode 5 or later; Apple says "
              "it works best on macOS 10.9 and later) and a USB cable."),
        "",
        _step(1, "Connect the device with the cable, unlock it and tap Trust. Find its UDID: Finder "
              "shows it when you click the line under the device's name; Xcode shows it in Window > "
              "Devices and Simulators. Then, with your UDID for UDID:"),
        "",
        _cmd(c["start_rvi"]),
        "",
        _para("It answers \"Starting device ... [SUCCEEDED] with interface rvi0\". If rvictl is not "
              "found, install Xcode (third-party notes put it at /Library/Apple/usr/bin/rvictl on "
              "recent macOS).", "   "),
        "",
        _step(2, "Start the capture (-P writes pcapng, the file format that holds packet metadata):"),
        "",
        _cmd(c["capture"]),
        "",
        _para(f"or, to stop by itself after {_minutes(seconds)}:", "   "),
        "",
        _cmd(c["timed"]),
        "",
        _step(3, f"For about {_minutes(seconds)}, on the device: turn Wi-Fi off and on, open the App "
              "Store, Settings > General > Software Update, enrol (or retry) in device management, "
              "Settings > your name > iCloud."),
        "",
        _step(4, "Stop with Control-C in the Terminal window, then remove the interface:"),
        "",
        _cmd(c["stop_rvi"]),
        "",
        _step(5, "See what the metadata holds: QA1176 says the device's interface is recorded; "
              "whether process names are, our sources do not say. If they are, the answer names "
              "the daemons as on a Mac."),
        "",
        _cmd(c["check"]),
        _cmd(c["analyze"]),
        "",
        *_daemons(),
    ]


def capture_guide(device: str = "mac", seconds: int = DEFAULT_SECONDS) -> str:
    """The guide for `device` ("mac" or "iphone"), capturing for about `seconds`, as plain text that
    fits 80 columns (commands are indented, never wrapped)."""
    if device not in DEVICES:
        raise AnalyzerError(f"unknown device {device!r} (choose from {', '.join(DEVICES)})")
    if not 10 <= seconds <= 86400:
        raise AnalyzerError("--seconds must be between 10 and 86400")
    lines = _mac(seconds) if device == "mac" else _iphone(seconds)
    lines += ["", "Sources:", *(f"    {s}" for s in SOURCES)]
    return "\n".join(lines) + "\n"


def register(sub: Any) -> None:
    p = sub.add_parser("capture-guide", help="how to take a capture on a Mac, iPhone or iPad (process names)",
                       description="Print the commands that take a capture apple-net can use: macOS tcpdump on "
                       "the PKTAP pseudo-interface (process names) or, for an iPhone or iPad, the remote "
                       "virtual interface from a Mac; what to do while it runs and how to stop it.")
    p.add_argument("--device", choices=DEVICES, default="mac", help="where the problem is (default: mac)")
    p.add_argument("--seconds", type=int, default=DEFAULT_SECONDS, metavar="N",
                   help=f"how long to capture, 10 to 86400 (default {DEFAULT_SECONDS})")
    p.add_argument("-o", "--output", metavar="PATH", help="write to PATH instead of stdout")
    p.set_defaults(func=cmd_capture_guide)


def cmd_capture_guide(args: argparse.Namespace) -> int:
    write_text(capture_guide(args.device, args.seconds), args.output)
    return 0
