"""In-band upgrades to TLS (STARTTLS and kin): the parser on hand-built dialogues, the engine on real captures.

The captures in tests/fixtures/local/starttls-*.pcap were made by real servers
and clients (aiosmtpd, pyftpdlib, Dovecot; smtplib, ftplib, imaplib, poplib,
curl --ssl-reqd) with `make_starttls.sh`. Zeek's pop3 trace lists STLS among
the server's capabilities without any client asking: Zeek logs those flows as
"pop3", not "pop3,ssl", and so must we.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from functools import cache

import pytest
from helpers_pcap import CORPUS, LOCAL
from hypothesis import given, settings
from hypothesis import strategies as st

from analyzer.engine import run_engine
from analyzer.inspect import FlowFacts
from analyzer.protocols.starttls import MAX_DIALOGUE, Upgrade, UpgradeProtocol, find_upgrade
from analyzer.report.records import flow_dict

# A TLS handshake record header and a few bytes: what follows an accepted upgrade.
CH = b"\x16\x03\x01\x00\x05\x01\x00\x00\x01\x00"
SH = b"\x16\x03\x03\x00\x05\x02\x00\x00\x01\x00"
SMTP_GREETING = b"220 smtp.mail.me.com ESMTP\r\n"
EHLO_REPLY = b"250-smtp.mail.me.com\r\n250-PIPELINING\r\n250 STARTTLS\r\n"


def _upgrade(client: bytes, server: bytes) -> Upgrade:
    up = find_upgrade(client, server)
    assert up is not None
    return up


# -- SMTP ------------------------------------------------------------------------

def test_smtp_accepted_gives_both_offsets() -> None:
    client = b"EHLO mac.lan\r\nSTARTTLS\r\n" + CH
    server = SMTP_GREETING + EHLO_REPLY + b"220 2.0.0 Ready to start TLS\r\n" + SH
    up = _upgrade(client, server)
    assert up == Upgrade(UpgradeProtocol.SMTP, "STARTTLS", "220 2.0.0 Ready to start TLS", True,
                         client.index(CH), server.index(SH), ())


def test_smtp_refused_454_is_a_fact_without_offsets() -> None:
    client = b"EHLO mac.lan\r\nSTARTTLS\r\nQUIT\r\n"
    server = SMTP_GREETING + EHLO_REPLY + b"454 4.7.0 TLS not available due to temporary reason\r\n221 Bye\r\n"
    up = _upgrade(client, server)
    assert (up.accepted, up.reply, up.client_tls, up.server_tls, up.weirds) == (
        False, "454 4.7.0 TLS not available due to temporary reason", None, None, ())


def test_smtp_pipelined_commands_pair_with_replies_in_order() -> None:
    # RFC 2920: the client sends without waiting; the n-th reply answers the n-th command.
    client = b"EHLO a\r\nNOOP\r\nRSET\r\nSTARTTLS\r\n" + CH
    server = SMTP_GREETING + EHLO_REPLY + b"250 2.0.0 Ok\r\n250 2.0.0 Ok\r\n220 Go ahead\r\n" + SH
    up = _upgrade(client, server)
    assert (up.accepted, up.reply, up.server_tls) == (True, "220 Go ahead", server.index(SH))


def test_smtp_lowercase_commands() -> None:
    up = _upgrade(b"ehlo a\r\nstarttls\r\n" + CH, SMTP_GREETING + b"250 ok\r\n220 ready\r\n" + SH)
    assert (up.command, up.accepted, up.client_tls) == ("starttls", True, len(b"ehlo a\r\nstarttls\r\n"))


def test_smtp_220_to_another_command_is_not_an_acceptance() -> None:
    # The server says 220 to NOOP (odd but seen); the answer to STARTTLS is the 454 after it.
    client = b"EHLO a\r\nNOOP\r\nSTARTTLS\r\n"
    server = SMTP_GREETING + b"250 ok\r\n220 odd reply to NOOP\r\n454 4.7.0 not now\r\n"
    up = _upgrade(client, server)
    assert (up.accepted, up.reply) == (False, "454 4.7.0 not now")


def test_smtp_greeting_220_is_not_the_answer_to_starttls() -> None:
    up = _upgrade(b"EHLO a\r\nSTARTTLS\r\n", SMTP_GREETING + b"250 ok\r\n")
    assert (up.accepted, up.reply, up.client_tls, up.server_tls) == (None, None, None, None)


def test_smtp_message_body_is_not_commands() -> None:
    body = b"Subject: howto\r\n\r\nSTARTTLS\r\n..dot-stuffed\r\n.\r\n"
    client = b"EHLO a\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n" + body + b"QUIT\r\n"
    server = SMTP_GREETING + b"250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n250 queued\r\n221 bye\r\n"
    assert find_upgrade(client, server) is None


def test_smtp_bdat_chunk_is_skipped() -> None:
    chunk = b"STARTTLS\r\nmore\r\n"
    client = b"EHLO a\r\nBDAT %d LAST\r\n" % len(chunk) + chunk + b"STARTTLS\r\n" + CH
    server = SMTP_GREETING + b"250 ok\r\n250 accepted\r\n220 ready\r\n" + SH
    up = _upgrade(client, server)
    assert (up.accepted, up.reply, up.client_tls) == (True, "220 ready", client.index(CH))


def test_smtp_refused_data_keeps_the_pairing() -> None:
    # DATA answered 503: no body follows, the next line is a command again.
    client = b"EHLO a\r\nDATA\r\nSTARTTLS\r\n" + CH
    server = SMTP_GREETING + b"250 ok\r\n503 5.5.1 need RCPT\r\n220 ready\r\n" + SH
    assert _upgrade(client, server).accepted is True


def test_smtp_plaintext_pipelined_after_starttls_is_weird() -> None:
    # The command injection of CVE-2011-0411: clear text right after STARTTLS.
    up = _upgrade(b"EHLO a\r\nSTARTTLS\r\nRSET\r\n", SMTP_GREETING + b"250 ok\r\n220 ready\r\n" + SH)
    assert up.client_tls is None and up.server_tls is not None
    assert up.weirds == ("starttls_client_not_tls",)


def test_smtp_server_clear_text_after_acceptance_is_weird() -> None:
    up = _upgrade(b"EHLO a\r\nSTARTTLS\r\n" + CH, SMTP_GREETING + b"250 ok\r\n220 ready\r\n250 what\r\n")
    assert (up.client_tls, up.server_tls, up.weirds) == (len(b"EHLO a\r\nSTARTTLS\r\n"), None,
                                                         ("starttls_server_not_tls",))


def test_client_tls_after_a_refusal_is_weird() -> None:
    up = _upgrade(b"EHLO a\r\nSTARTTLS\r\n" + CH, SMTP_GREETING + b"250 ok\r\n454 no\r\n")
    assert (up.accepted, up.client_tls, up.weirds) == (False, None, ("starttls_tls_after_refusal",))


def test_one_sided_capture_client_only() -> None:
    client = b"EHLO a\r\nSTARTTLS\r\n" + CH
    up = _upgrade(client, b"")
    assert (up.protocol, up.accepted, up.client_tls, up.server_tls) == (
        UpgradeProtocol.SMTP, None, client.index(CH), None)


def test_unpaired_reply_falls_back_to_where_the_server_went_tls() -> None:
    # A reply we cannot read (no code) ends the pairing; the client went on in TLS, so the
    # server said yes somewhere: its TLS starts at the first line end followed by TLS.
    client = b"EHLO a\r\nSTARTTLS\r\n" + CH
    server = SMTP_GREETING + b"garbled\r\n220 ready\r\n" + SH
    up = _upgrade(client, server)
    assert (up.accepted, up.server_tls, up.weirds) == (None, server.index(SH), ("starttls_reply_unmatched",))


# -- FTP, POP3, IMAP, XMPP -----------------------------------------------------------

def test_ftp_auth_tls_with_a_multiline_greeting() -> None:
    server = b"220-Welcome\r\nfree text line\r\n220 ready\r\n234 AUTH TLS successful\r\n" + SH
    up = _upgrade(b"AUTH TLS\r\n" + CH, server)
    assert (up.protocol, up.accepted, up.reply, up.server_tls) == (
        UpgradeProtocol.FTP, True, "234 AUTH TLS successful", server.index(SH))


def test_ftp_auth_ssl_refused_then_auth_tls_accepted_pairs_right() -> None:
    # curl's order; the first AUTH answered 504 is a refusal of that command only.
    up = _upgrade(b"AUTH SSL\r\n", b"220 ftp\r\n504 AUTH SSL not supported\r\n")
    assert (up.command, up.accepted) == ("AUTH SSL", False)
    up = _upgrade(b"FEAT\r\nAUTH TLS\r\n" + CH, b"220 ftp\r\n211-Features:\r\n AUTH TLS\r\n211 End\r\n234 ok\r\n" + SH)
    assert (up.command, up.accepted) == ("AUTH TLS", True)


def test_pop3_stls_after_capa_list() -> None:
    server = b"+OK Dovecot ready.\r\n+OK\r\nCAPA\r\nSTLS\r\nUSER\r\n.\r\n+OK Begin TLS negotiation now.\r\n" + SH
    up = _upgrade(b"CAPA\r\nSTLS\r\n" + CH, server)
    assert (up.protocol, up.accepted, up.reply, up.server_tls) == (
        UpgradeProtocol.POP3, True, "+OK Begin TLS negotiation now.", server.index(SH))


def test_pop3_stls_refused() -> None:
    up = _upgrade(b"stls\r\n", b"+OK hi\r\n-ERR TLS not configured\r\n")
    assert (up.accepted, up.reply) == (False, "-ERR TLS not configured")


def test_pop3_server_offering_stls_is_not_an_upgrade() -> None:
    assert find_upgrade(b"CAPA\r\nQUIT\r\n", b"+OK hi\r\n+OK\r\nSTLS\r\n.\r\n+OK bye\r\n") is None


@pytest.mark.parametrize(("status", "accepted"), [(b"OK", True), (b"NO", False), (b"BAD", False)])
def test_imap_tagged_answer(status: bytes, accepted: bool) -> None:
    server = (b"* OK [CAPABILITY IMAP4rev1 STARTTLS] ready\r\na1 OK done\r\n"
              b"* BYE not this one\r\na2 " + status + b" whatever\r\n" + (SH if accepted else b""))
    up = _upgrade(b"a1 CAPABILITY\r\na2 starttls\r\n" + (CH if accepted else b""), server)
    assert (up.protocol, up.command, up.accepted) == (UpgradeProtocol.IMAP, "a2 starttls", accepted)
    assert up.server_tls == (server.index(SH) if accepted else None)


def test_imap_one_tag_for_every_command() -> None:
    # OpenSSL's s_client tags every command "."; the first ". OK" answers CAPABILITY.
    server = b"* OK hi\r\n* CAPABILITY IMAP4rev1\r\n. OK listed\r\n. BAD TLS support isn't enabled.\r\n"
    up = _upgrade(b". CAPABILITY\r\n. STARTTLS\r\n", server)
    assert (up.command, up.accepted, up.reply) == (". STARTTLS", False, ". BAD TLS support isn't enabled.")


def test_imap_literal_is_skipped() -> None:
    client = b"a1 LOGIN {8}\r\nSTARTTLS pass\r\na2 STARTTLS\r\n" + CH
    up = _upgrade(client, b"* OK hi\r\n+ go\r\na1 NO no\r\na2 OK go\r\n" + SH)
    assert (up.command, up.accepted) == ("a2 STARTTLS", True)


def test_xmpp_proceed_and_failure() -> None:
    stream = b"<?xml version='1.0'?><stream:stream to='icloud.com' xmlns='jabber:client' version='1.0'>"
    features = (b"<stream:stream from='icloud.com' id='1'><stream:features>"
                b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls></stream:features>")
    ask = b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"
    server = features + b"<proceed xmlns=\"urn:ietf:params:xml:ns:xmpp-tls\"/>" + SH
    up = _upgrade(stream + ask + CH, server)
    assert (up.protocol, up.accepted, up.client_tls, up.server_tls) == (
        UpgradeProtocol.XMPP, True, len(stream + ask), server.index(SH))
    up = _upgrade(stream + ask, features + b"<failure xmlns='urn:ietf:params:xml:ns:xmpp-tls'/></stream:stream>")
    assert up.accepted is False
    assert find_upgrade(stream, features) is None  # the server's offer alone is no upgrade


@pytest.mark.parametrize(("client", "server"), [
    (b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", b"HTTP/1.1 200 OK\r\n\r\n"),
    (CH, SH),
    (b"SSH-2.0-OpenSSH_9.6\r\n", b"SSH-2.0-OpenSSH_9.6\r\n"),
    (b"EHLO a\r\nSTARTTLS\r\n", b"SSH-2.0-OpenSSH_9.6\r\n"),
    (b"\x00\x01STARTTLS\r\n", SMTP_GREETING),
    (b" \r\nSTARTTLS\r\n", SMTP_GREETING),
    (b"", SMTP_GREETING),
    (b"STARTTLS", SMTP_GREETING),  # no line end yet
])
def test_not_an_upgrade(client: bytes, server: bytes) -> None:
    assert find_upgrade(client, server) is None


def test_long_dialogue_is_read_only_up_to_the_limit() -> None:
    client = b"EHLO a\r\n" + b"NOOP\r\n" * (MAX_DIALOGUE // 6) + b"STARTTLS\r\n" + CH
    server = SMTP_GREETING + b"250 ok\r\n" * (MAX_DIALOGUE // 8 + 2) + b"220 go\r\n" + SH
    assert find_upgrade(client, server) is None


def test_strings_from_the_wire_are_escaped_and_bounded() -> None:
    up = _upgrade(b"EHLO a\r\nSTARTTLS\r\n", SMTP_GREETING + b"250 ok\r\n454 \\no \xff" + b"x" * 500 + b"\r\n")
    assert up.reply is not None and up.reply.startswith("454 \\x5cno \\xff") and len(up.reply) <= 220


_dialogues = st.sampled_from([
    (b"EHLO a\r\nSTARTTLS\r\n" + CH, SMTP_GREETING + EHLO_REPLY + b"220 go\r\n" + SH),
    (b"a1 STARTTLS\r\n" + CH, b"* OK hi\r\na1 OK go\r\n" + SH),
    (b"CAPA\r\nSTLS\r\n" + CH, b"+OK hi\r\n+OK\r\nSTLS\r\n.\r\n+OK go\r\n" + SH),
    (b"AUTH TLS\r\n" + CH, b"220 ftp\r\n234 go\r\n" + SH),
])


@settings(max_examples=300, deadline=None)
@given(_dialogues, st.integers(0, 1), st.integers(0, 400), st.binary(max_size=8))
def test_mutated_dialogues_give_an_upgrade_or_none(dialogue: tuple[bytes, bytes], side: int, at: int,
                                                   junk: bytes) -> None:
    parts = list(dialogue)
    data = parts[side]
    at = min(at, len(data))
    parts[side] = data[:at] + junk + data[at + len(junk):]
    up = find_upgrade(parts[0], parts[1])
    assert up is None or isinstance(up, Upgrade)
    if up is not None:
        for off, data in ((up.client_tls, parts[0]), (up.server_tls, parts[1])):
            assert off is None or 0 < off <= len(data)


_greetings = st.sampled_from([b"", SMTP_GREETING, b"220 ftp\r\n", b"+OK hi\r\n", b"* OK hi\r\n", b"<stream:stream>"])
_openings = st.sampled_from([b"EHLO a\r\n", b"AUTH TLS\r\n", b"a1 STARTTLS\r\n", b"STLS\r\n", b"<stream:stream>"])


@settings(max_examples=300, deadline=None)
@given(_openings, st.binary(max_size=64), _greetings, st.binary(max_size=64))
def test_arbitrary_bytes_after_an_opening_give_an_upgrade_or_none(c0: bytes, c1: bytes, s0: bytes,
                                                                  s1: bytes) -> None:
    up = find_upgrade(c0 + c1, s0 + s1)
    assert up is None or isinstance(up, Upgrade)


# -- real captures -------------------------------------------------------------------

@cache
def _flows(name: str) -> dict[int, FlowFacts]:
    """The TCP flows of a capture by client port."""
    return {f.flow.client_port: f for f in run_engine([LOCAL / name]).flows if f.flow.proto == 6}


# (capture, server port, app, SNI, TLS version, command, reply) per flow, in capture order.
EXPECTED = {
    "starttls-smtp.pcap": [
        (10587, "smtp-starttls", "smtp.mail.me.com", "TLSv13", "STARTTLS", "220 Ready to start TLS"),  # smtplib
        (10588, "smtp", None, None, "STARTTLS", "454 TLS not available"),  # aiosmtpd without TLS
        (10587, "smtp-starttls", "smtp.mail.me.com", "TLSv12", "STARTTLS", "220 Ready to start TLS"),  # curl
    ],
    "starttls-ftp.pcap": [
        (10021, "ftp-starttls", "ftp.starttls.test", "TLSv13", "AUTH TLS", "234 AUTH TLS successful."),  # ftplib
        (10021, "ftp-starttls", "ftp.starttls.test", "TLSv13", "AUTH SSL", "234 AUTH SSL successful."),  # curl
    ],
    "starttls-imap-pop3.pcap": [
        (10143, "imap-starttls", "imap.mail.me.com", "TLSv13", "MNDG1 STARTTLS",
         "MNDG1 OK Begin TLS negotiation now."),  # imaplib
        (10110, "pop3-starttls", "imap.mail.me.com", "TLSv13", "STLS", "+OK Begin TLS negotiation now."),  # poplib
        (10143, "imap-starttls", "imap.mail.me.com", "TLSv13", "A002 STARTTLS",
         "A002 OK Begin TLS negotiation now."),  # curl
    ],
    # Servers without TLS (pyftpdlib's plain handler, Dovecot with ssl = no), asked by openssl s_client,
    # which then sends its ClientHello anyway.
    "starttls-refused.pcap": [
        (10022, "ftp", None, None, "AUTH TLS", '500 Command "AUTH" not understood.'),
        (10144, "imap", None, None, ". STARTTLS", ". BAD TLS support isn't enabled."),  # one tag for all
        (10111, "pop3", None, None, "STLS", "-ERR TLS support isn't enabled."),
    ],
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_real_upgrades_carry_sni_and_tls_version(name: str) -> None:
    flows = sorted(_flows(name).values(), key=lambda f: f.flow.ts_start)
    got = [(f.flow.server_port, f.app, f.server_name, f.tls.session.version if f.tls else None,
            f.starttls.command if f.starttls else None, f.starttls.reply if f.starttls else None) for f in flows]
    assert got == EXPECTED[name]
    for f in flows:
        assert f.starttls is not None
        if f.starttls.accepted is False:
            # smtplib stops after the 454; openssl s_client sends its ClientHello anyway.
            assert f.tls is None
            assert f.weirds == (("starttls_tls_after_refusal",) if name == "starttls-refused.pcap" else ())
        else:
            assert not f.weirds
        if f.tls is not None:
            assert f.starttls.accepted is True and f.tls.session.established
            assert f.tls.client_hello is not None and f.tls.server_hello is not None
            # The handshake's times are those of the TLS records, after the clear-text dialogue.
            assert f.tls.client_hello_ts is not None and f.tls.client_hello_ts > f.flow.ts_start


def test_refused_upgrade_in_the_json_record() -> None:
    (refused,) = [f for f in _flows("starttls-smtp.pcap").values() if f.flow.server_port == 10588]
    d = json.loads(json.dumps(flow_dict(refused)))
    assert (d["app"], d["tls"], d["sni"]) == ("smtp", None, None)
    assert d["starttls"] == {"protocol": "smtp", "command": "STARTTLS", "reply": "454 TLS not available",
                             "accepted": False, "client_tls_offset": None, "server_tls_offset": None}


def test_tls12_upgrade_shows_the_certificate() -> None:
    (curl,) = [f for f in _flows("starttls-smtp.pcap").values()
               if f.tls is not None and f.tls.session.version == "TLSv12"]
    assert curl.tls is not None
    assert [c.subject for c in curl.tls.certificates] == ["CN=smtp.mail.me.com"]
    assert curl.tls.certificates[0].san_dns[:1] == ("smtp.mail.me.com",)
    assert curl.tls.session.cipher == "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384"
    d = flow_dict(curl)
    assert (d["app"], d["sni"], d["tls"]["version"], d["starttls"]["accepted"]) == (
        "smtp-starttls", "smtp.mail.me.com", "TLSv12", True)


TSHARK_DECODE = ["-d", "tcp.port==10587,smtp", "-d", "tcp.port==10588,smtp", "-d", "tcp.port==10021,ftp",
                 "-d", "tcp.port==10143,imap", "-d", "tcp.port==10110,pop",
                 "-d", "tcp.port==10022,ftp", "-d", "tcp.port==10144,imap", "-d", "tcp.port==10111,pop"]


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed")
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_sni_agrees_with_tshark(name: str) -> None:
    # Wireshark's SMTP, IMAP, POP and FTP dissectors follow an accepted upgrade too (and, like
    # Zeek and us, not a refused one: openssl's ClientHello after a refusal is not TLS to them).
    # Its FTP dissector knows AUTH TLS only, not curl's AUTH SSL.
    out = subprocess.run(
        ["tshark", "-r", str(LOCAL / name), *TSHARK_DECODE, "-Y", "tls.handshake.type == 1",
         "-T", "fields", "-e", "tcp.srcport", "-e", "tls.handshake.extensions_server_name"],
        capture_output=True, text=True, check=True).stdout
    seen = {int(port): sni for port, sni in (line.split("\t") for line in out.splitlines())}
    flows = _flows(name)
    ours = {port: f.server_name for port, f in flows.items() if f.tls is not None and f.tls.client_hello is not None}
    assert seen.items() <= ours.items()
    assert {flows[p].starttls.command for p in set(ours) - set(seen)} <= {"AUTH SSL"}  # type: ignore[union-attr]
    assert bool(seen) == bool(ours) == (name != "starttls-refused.pcap")


# -- Zeek's corpus -----------------------------------------------------------------------

def test_zeek_pop3_trace_has_no_upgrade() -> None:
    # Zeek's conn.log for this trace says service "pop3" for every session, never "pop3,ssl":
    # the server lists STLS in its CAPA answer, but no client asks for it.
    baseline = CORPUS / "zeek/testing/btest/Baseline/scripts.base.protocols.pop3.basic/conn.log"
    services = [line.split("\t")[7] for line in baseline.read_text().splitlines() if not line.startswith("#")]
    assert "pop3" in services and not any("ssl" in s for s in services)
    flows = run_engine([CORPUS / "zeek/testing/btest/Traces/pop3/pop3.pcap"]).flows
    sessions = [f for f in flows if f.flow.client.payload_bytes]
    assert len(sessions) == services.count("pop3")
    assert all(f.starttls is None and f.tls is None for f in flows)
