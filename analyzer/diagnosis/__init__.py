"""Diagnosis: attribution to Apple services, verdicts, interception, DNS, roll-up and advice (policy, no parsing)."""

from analyzer.diagnosis.diagnose import Diagnosis, diagnose
from analyzer.diagnosis.report import build_report

__all__ = ["Diagnosis", "build_report", "diagnose"]
