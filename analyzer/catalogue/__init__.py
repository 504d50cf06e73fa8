"""The Apple service catalogue: signatures/ loaded, validated and matched."""

from analyzer.catalogue.issuers import IssuerClassifier, IssuerKind, IssuerName, IssuerVerdict
from analyzer.catalogue.loader import EDITIONS, Catalogue, default_signatures_dir, load_catalogue
from analyzer.catalogue.matcher import Match, Matcher
from analyzer.catalogue.model import AppleIssuer, Entry, HostKind, InspectionProduct, Proxy, Section, Source, Status

__all__ = [
    "EDITIONS",
    "AppleIssuer",
    "Catalogue",
    "Entry",
    "HostKind",
    "InspectionProduct",
    "IssuerClassifier",
    "IssuerKind",
    "IssuerName",
    "IssuerVerdict",
    "Match",
    "Matcher",
    "Proxy",
    "Section",
    "Source",
    "Status",
    "default_signatures_dir",
    "load_catalogue",
]
