"""`apple-net live` gives up root once the interface is open (`-Z USER`, as tcpdump).

The real checks run `apple-net live -i lo` inside a network namespace of
their own (real packets on its loopback, nothing leaves it) with debug
logging on, and read the credentials the running session logged from
/proc/self/status: the uids, gids and supplementary groups that parse the
traffic.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from analyzer.live.privileges import PrivilegeError, Target, drop_target

ROOT = Path(__file__).resolve().parents[1]
NOBODY = pwd.getpwnam("nobody")
DRIVER = ("import logging, sys; logging.basicConfig(level=logging.DEBUG, format='%(name)s: %(message)s'); "
          "from analyzer.cli import main; sys.exit(main(sys.argv[1:]))")
CREDS = "live session credentials: "

needs_root = pytest.mark.skipif(os.geteuid() != 0 or shutil.which("ip") is None,
                                reason="needs root and ip netns to capture and to drop root")


# -- whom to become ---------------------------------------------------------------------------------

def test_default_target_is_the_sudo_user_else_nobody() -> None:
    assert drop_target(None, {"SUDO_UID": "4321", "SUDO_GID": "4322"}, euid=0) == Target("4321", 4321, 4322)
    assert drop_target(None, {}, euid=0) == Target("nobody", NOBODY.pw_uid, NOBODY.pw_gid)
    assert drop_target(None, {"SUDO_UID": "0", "SUDO_GID": "0"}, euid=0) == Target("nobody", NOBODY.pw_uid,
                                                                                     NOBODY.pw_gid)


def test_explicit_user_root_and_non_root() -> None:
    assert drop_target("nobody", {"SUDO_UID": "4321"}, euid=0) == Target("nobody", NOBODY.pw_uid, NOBODY.pw_gid)
    assert drop_target(str(NOBODY.pw_uid), {}, euid=0) == Target("nobody", NOBODY.pw_uid, NOBODY.pw_gid)
    assert drop_target("root", {}, euid=0) is None  # -Z root keeps root
    with pytest.raises(PrivilegeError, match="no such user"):
        drop_target("no-such-user-here", {}, euid=0)
    # Not root: nothing to give up, and no switching to someone else.
    assert drop_target(None, {"SUDO_UID": "4321"}, euid=1000) is None
    with pytest.raises(PrivilegeError, match="only root"):
        drop_target("nobody", {}, euid=1000)


# -- the real run -----------------------------------------------------------------------------------

@pytest.fixture
def netns() -> Iterator[str]:
    name = f"anlpriv-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


@pytest.fixture
def nobody_dir() -> Iterator[Path]:
    """A folder nobody owns, as a user's own folder would be (pytest's tmp_path is root's 0700)."""
    path = Path(tempfile.mkdtemp(prefix="apple-net-priv-"))
    path.chmod(0o755)
    os.chown(path, NOBODY.pw_uid, NOBODY.pw_gid)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _live(ns: str, *args: str, traffic: bool = False, prefix: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SUDO_")}
    env["PYTHONPATH"] = str(ROOT)
    env["HOME"] = "/nonexistent"  # no user's own configuration, and none that nobody could not read
    argv = ["ip", "netns", "exec", ns, *prefix, sys.executable, "-c", DRIVER, "live", "-i", "lo", *args]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    head = ""
    if traffic:
        assert proc.stderr is not None
        while "capturing on" not in head:  # the capture is running: send
            line = proc.stderr.readline()
            if not line:
                break
            head += line
        # Real DNS queries over the namespace's loopback, sent from inside it.
        send = ("import socket, struct\n"
                "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
                "for i in range(5):\n"
                "    q = struct.pack('>HHHHHH', 0x1200 + i, 0x0100, 1, 0, 0, 0) + b'\\x05apple\\x03com\\x00\\x00\\x01\\x00\\x01'\n"
                "    s.sendto(q, ('127.0.0.1', 53))\n")
        subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", send], check=True, timeout=20)
        # Read on through the same buffered stream (communicate() would skip what readline() read ahead);
        # with -o nothing comes on stdout, so this cannot block on a full pipe.
        assert proc.stdout is not None
        err = head + proc.stderr.read()
        out = proc.stdout.read()
        proc.wait(60)
        return subprocess.CompletedProcess(argv, proc.returncode, out, err)
    out, err = proc.communicate(timeout=60)
    return subprocess.CompletedProcess(argv, proc.returncode, out, err)


def _credentials(stderr: str) -> dict[str, str]:
    lines = [line for line in stderr.splitlines() if CREDS in line]
    assert len(lines) == 1, stderr
    return eval(lines[0].split(CREDS, 1)[1], {})  # noqa: S307 - our own dict repr from the log line


def _installed(module: str) -> bool:
    try:
        __import__(module)
    except ImportError:
        return False
    return True


@needs_root
@pytest.mark.parametrize("backend", [b for b, m in (("pcapy", "pcapy"), ("scapy", "scapy.arch.linux")) if _installed(m)])
def test_live_parses_as_nobody_and_writes_as_nobody(netns: str, nobody_dir: Path, backend: str) -> None:
    report, written = nobody_dir / "report.json", nobody_dir / "w.pcapng"
    proc = _live(netns, "-Z", "nobody", "--backend", backend, "--duration", "3", "--format", "json",
                 "-o", str(report), "--write", str(written), traffic=True)
    assert proc.returncode == 0, proc.stderr
    creds = _credentials(proc.stderr)
    uid, gid = str(NOBODY.pw_uid), str(NOBODY.pw_gid)
    assert creds["Uid"].split() == [uid] * 4  # real, effective, saved, filesystem
    assert creds["Gid"].split() == [gid] * 4
    assert creds["Groups"] == ""  # root's supplementary groups are gone
    assert int(creds["CapEff"], 16) == 0
    data = json.loads(report.read_text())
    assert data["captures"][0]["packets"] >= 5  # the queries were read and parsed by nobody
    for path in [report, *nobody_dir.glob("w*.pcapng")]:
        assert path.stat().st_uid == NOBODY.pw_uid, path


@needs_root
def test_default_is_the_sudo_user(netns: str, nobody_dir: Path) -> None:
    env_user = ("env", f"SUDO_UID={NOBODY.pw_uid}", f"SUDO_GID={NOBODY.pw_gid}")
    proc = _live(netns, "--duration", "1", "--format", "json", "-o", str(nobody_dir / "r.json"), prefix=env_user)
    assert proc.returncode == 0, proc.stderr
    assert _credentials(proc.stderr)["Uid"].split() == [str(NOBODY.pw_uid)] * 4


@needs_root
def test_root_only_with_z_root_and_a_warning(netns: str) -> None:
    proc = _live(netns, "-Z", "root", "--duration", "1", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    assert "WARNING: -Z root" in proc.stderr
    assert _credentials(proc.stderr)["Uid"].split() == ["0"] * 4


@needs_root
def test_unwritable_report_folder_fails_before_capturing(netns: str, tmp_path: Path) -> None:
    private = tmp_path / "root-only"
    private.mkdir(mode=0o700)
    proc = _live(netns, "-Z", "nobody", "--duration", "1", "--format", "json", "-o", str(private / "r.json"))
    assert proc.returncode == 2
    errors = [line for line in proc.stderr.splitlines() if line.startswith("apple-net")]
    assert len(errors) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "user nobody cannot create files in" in errors[0] and "-Z root" in errors[0]
    assert CREDS not in proc.stderr  # the capture never ran
    assert not (private / "r.json").exists()


@needs_root
@pytest.mark.skipif(shutil.which("setpriv") is None, reason="needs setpriv")
def test_a_drop_that_fails_is_one_line(netns: str) -> None:
    # Root without CAP_SETUID/CAP_SETGID: the interface opens, the drop cannot happen, the run must not go on.
    proc = _live(netns, "-Z", "nobody", "--duration", "1", "--format", "json",
                 prefix=("setpriv", "--inh-caps=-all", "--bounding-set=-setuid,-setgid", "--"))
    assert proc.returncode == 2, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("apple-net")]
    assert len(errors) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "cannot drop root to user nobody" in errors[0]
    assert CREDS not in proc.stderr


def _nobody_can_run_python() -> bool:
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        return False
    proc = subprocess.run(["setpriv", f"--reuid={NOBODY.pw_uid}", f"--regid={NOBODY.pw_gid}", "--clear-groups",
                           sys.executable, "-c", "import analyzer"], capture_output=True, check=False,
                          env={"PYTHONPATH": str(ROOT), "HOME": "/nonexistent"})
    return proc.returncode == 0


@needs_root
def test_drop_capabilities_leaves_none() -> None:
    # In a child: the capability sets really go (capset), and nothing is left to regain.
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            from analyzer.live.privileges import credentials, drop_capabilities

            assert int(credentials()["CapEff"], 16) != 0
            drop_capabilities()
            code = 0 if int(credentials()["CapEff"], 16) == 0 else 3
        finally:
            os._exit(code)
    assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0


@needs_root
@pytest.mark.skipif(not _nobody_can_run_python(), reason="nobody cannot run this Python (installed in a private folder)")
def test_a_user_allowed_by_capabilities_gives_them_up(netns: str) -> None:
    # nobody with CAP_NET_RAW/CAP_NET_ADMIN (what `setcap` on python gives a user): it opens the interface,
    # then parses with no capability left.
    caps = "+net_raw,+net_admin"
    proc = _live(netns, "--duration", "1", "--format", "json",
                 prefix=("setpriv", f"--reuid={NOBODY.pw_uid}", f"--regid={NOBODY.pw_gid}", "--clear-groups",
                         f"--inh-caps={caps}", f"--ambient-caps={caps}", "--"))
    assert proc.returncode == 0, proc.stderr
    creds = _credentials(proc.stderr)
    assert creds["Uid"].split() == [str(NOBODY.pw_uid)] * 4
    assert int(creds["CapEff"], 16) == 0, creds
    assert json.loads(proc.stdout)["captures"][0]["source"] == "live:lo"
