"""The diagnosis vocabulary (the report contract's words) and its typed results."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from analyzer.catalogue.matcher import Match
from analyzer.catalogue.model import Entry


class Verdict(StrEnum):
    OK = "ok"
    NO_RESPONSE = "no_response"
    REFUSED = "refused"
    RESET = "reset"
    TLS_FAILED = "tls_failed"
    INTERCEPTED = "intercepted"
    INCOMPLETE = "incomplete"


FAILURES = frozenset({Verdict.NO_RESPONSE, Verdict.REFUSED, Verdict.RESET, Verdict.TLS_FAILED, Verdict.INTERCEPTED})


class DNSVerdict(StrEnum):
    OK = "ok"
    NXDOMAIN = "nxdomain"
    SERVFAIL = "servfail"
    REFUSED = "refused"
    SINKHOLED = "sinkholed"
    NO_RESPONSE = "no_response"


class Status(StrEnum):
    WORKING = "working"
    DEGRADED = "degraded"
    BLOCKED = "blocked"
    INTERCEPTED = "intercepted"
    NOT_SEEN = "not_seen"


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


SEVERITY_RANK = {Severity.INFO: 0, Severity.WARNING: 1, Severity.ERROR: 2}


class Evidence(StrEnum):
    """How a flow was tied to a service, strongest first (the contract's `attribution`)."""

    SNI = "sni"
    QUIC_SNI = "quic_sni"
    CONNECT = "connect"
    HTTP_HOST = "http_host"
    DNS = "dns"
    IP_RANGE = "ip_range"
    PORT_ONLY = "port_only"


@dataclass(frozen=True, slots=True)
class Attribution:
    entry: Entry | None
    match: Match | None
    evidence: Evidence | None
    name: str | None  # the name (or address) that matched
    names: tuple[str, ...]  # every name tied to the flow
    port: int | None  # the service port (CONNECT target's port for tunnels)
    port_documented: bool | None

    @property
    def is_apple(self) -> bool:
        return self.entry is not None


@dataclass(frozen=True, slots=True)
class Interception:
    product: str | None  # "Zscaler", "mitmproxy", or None when the CA is unknown
    issuer: str | None  # RFC 4514 issuer of the substitute certificate, when visible
    confidence: str  # high | medium | low
    evidence: tuple[str, ...]


@dataclass(slots=True)
class Judgement:
    """A flow's verdict with its reasons; built by the verdict stage, refined by cross-flow passes."""

    verdict: Verdict
    reason: str
    reset_by: str | None = None  # client | server | middlebox
    evidence: list[str] = field(default_factory=list)
    interception: Interception | None = None
    alert: str | None = None  # "client:unknown_ca"


@dataclass(frozen=True, slots=True)
class Finding:
    severity: Severity
    kind: str
    message: str
    service: str | None = None
    flows: tuple[str, ...] = ()
    evidence: tuple[str, ...] = ()
    advice: str | None = None
    wireshark_filter: str | None = None
