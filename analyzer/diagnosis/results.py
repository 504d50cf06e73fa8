"""What the diagnosis says of one flow and one DNS transaction (the roll-up and the findings read these)."""

from __future__ import annotations

from dataclasses import dataclass, field

from analyzer.diagnosis.clients import Device
from analyzer.diagnosis.dns import DNSJudgement
from analyzer.diagnosis.model import Attribution, Judgement
from analyzer.dnsmap import DNSTransaction
from analyzer.inspect import FlowFacts


@dataclass(slots=True)
class FlowResult:
    facts: FlowFacts
    attribution: Attribution
    judgement: Judgement
    device: Device = field(default_factory=lambda: Device(("",)))

    @property
    def id(self) -> str:
        return self.facts.flow.uid


@dataclass(slots=True)
class DNSResult:
    transaction: DNSTransaction
    judgement: DNSJudgement
    silence_untrusted: bool = False
    """No answer was captured, but the capture misses the other direction: not a failure to report."""
    device: Device = field(default_factory=lambda: Device(("",)))
    captive: bool = False
    """The answer was a captive portal's address: the portal, not a DNS filter, answered."""
