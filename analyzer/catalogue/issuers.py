"""Is a certificate issuer one of Apple's own, a known inspection product, or neither?"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from analyzer.catalogue.loader import Catalogue
from analyzer.catalogue.model import AppleIssuer, InspectionProduct


class IssuerKind(StrEnum):
    APPLE = "apple"  # an issuer Apple's services legitimately present
    INSPECTION = "inspection"  # the CA of a known TLS-inspection product
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class IssuerName:
    dn: str  # RFC 4514 string
    cn: str | None = None
    o: str | None = None
    ou: str | None = None


@dataclass(frozen=True, slots=True)
class IssuerVerdict:
    kind: IssuerKind
    apple: AppleIssuer | None = None
    product: InspectionProduct | None = None
    matched_on: str | None = None  # "cn contains 'zscaler'"


class IssuerClassifier:
    def __init__(self, catalogue: Catalogue) -> None:
        self._exact = {i.name.casefold(): i for i in catalogue.apple_issuers if i.match == "cn"}
        self._prefix = [(i.name.casefold(), i) for i in catalogue.apple_issuers if i.match == "cn_prefix"]
        # User files load after the packaged one: let a site's own CA win over a generic pattern.
        self._products = tuple(reversed(catalogue.inspection_products))

    def classify(self, issuer: IssuerName) -> IssuerVerdict:
        # Inspection products are checked first: a proxy CA that copies an Apple name into
        # its OU (some do) must not pass as Apple.
        fields = {"cn": issuer.cn, "o": issuer.o, "ou": issuer.ou, "dn": issuer.dn}
        for product in self._products:
            for m in product.match:
                value = fields.get(m.field)
                if value and m.contains in value.casefold():
                    return IssuerVerdict(IssuerKind.INSPECTION, product=product, matched_on=f"{m.field} contains {m.contains!r}")
        cn = (issuer.cn or "").casefold()
        if cn in self._exact:
            return IssuerVerdict(IssuerKind.APPLE, apple=self._exact[cn], matched_on="cn")
        for prefix, apple in self._prefix:
            if cn.startswith(prefix):
                return IssuerVerdict(IssuerKind.APPLE, apple=apple, matched_on=f"cn starts with {apple.name!r}")
        return IssuerVerdict(IssuerKind.UNKNOWN)
