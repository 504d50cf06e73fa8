"""DNS verdicts: answered, refused by the resolver, or sinkholed by a filter."""

from __future__ import annotations

from dataclasses import dataclass

from analyzer.catalogue.matcher import Matcher
from analyzer.catalogue.model import Entry, Sinkhole
from analyzer.diagnosis.attribution import preferred_entry
from analyzer.diagnosis.model import DNSVerdict
from analyzer.diagnosis.paths import ip_object
from analyzer.dnsmap import DNSTransaction

BLOCKING_EDE = ("Blocked", "Censored", "Filtered", "Prohibited")  # RFC 8914 info codes 15-18


@dataclass(frozen=True, slots=True)
class DNSJudgement:
    verdict: DNSVerdict
    reason: str
    entry: Entry | None


def _sinkhole_reason(addr: str, is_apple: bool, sinkholes: tuple[Sinkhole, ...]) -> str | None:
    ip = ip_object(addr)
    if ip is None:
        return None
    if ip.is_unspecified:
        return f"answered {addr} (the unspecified address: a DNS filter's sinkhole)"
    if ip.is_loopback:
        return f"answered {addr} (loopback: a DNS filter's sinkhole)"
    for s in sinkholes:
        if ip in s.network:
            return f"answered {addr}, the block page of {s.product}"
    if is_apple and (ip.is_private or ip.is_link_local) and not ip.is_global:
        return f"answered {addr}, a private address, for a public Apple name"
    return None


def judge_dns(t: DNSTransaction, matcher: Matcher, sinkholes: tuple[Sinkhole, ...]) -> DNSJudgement:
    m = matcher.match_name(t.query) if t.query else None
    entry = preferred_entry(m, None, None) if m is not None else None
    is_apple = entry is not None
    blocked_by = [e for e in t.extended_errors if e.startswith(BLOCKING_EDE)]
    ede = f" (resolver says: {'; '.join(blocked_by)})" if blocked_by else ""
    if t.rcode is None:
        asked = f" (asked {t.queries} times)" if t.queries > 1 else ""
        return DNSJudgement(DNSVerdict.NO_RESPONSE, f"no answer from {t.server_ip}{asked}", entry)
    if t.rcode == "NXDOMAIN":
        return DNSJudgement(DNSVerdict.NXDOMAIN, f"{t.server_ip} says {t.query} does not exist{ede}", entry)
    if t.rcode == "SERVFAIL":
        return DNSJudgement(DNSVerdict.SERVFAIL, f"{t.server_ip} failed to resolve {t.query} (SERVFAIL){ede}", entry)
    if t.rcode == "REFUSED":
        return DNSJudgement(DNSVerdict.REFUSED, f"{t.server_ip} refused to resolve {t.query}{ede}", entry)
    if t.rcode != "NOERROR":
        return DNSJudgement(DNSVerdict.OK, f"rcode {t.rcode}", entry)
    for addr in (*t.addresses, *t.hint_addresses):
        why = _sinkhole_reason(addr, is_apple, sinkholes)
        if why is not None:
            return DNSJudgement(DNSVerdict.SINKHOLED, why + ede, entry)
    if blocked_by:
        return DNSJudgement(DNSVerdict.SINKHOLED, f"the resolver filtered {t.query}{ede}", entry)
    if not t.answers:
        return DNSJudgement(DNSVerdict.OK, f"no {t.qtype} record (NOERROR, empty answer)", entry)
    chain = " -> ".join(t.chain[1:])
    return DNSJudgement(DNSVerdict.OK, "resolved" + (f" via {chain}" if chain else "") +
                        (f" to {', '.join(t.addresses)}" if t.addresses else ""), entry)
