"""The public Python API: `analyzer.analyze(paths) -> Analysis`.

A notebook gets exactly what the CLI gets: the same report dict, plus typed
pandas DataFrames of services, flows, DNS transactions and findings.

The DataFrames are for reading and filtering: a cell that holds a list or a
mapping in the report is a readable string there (ports "5223, 443", verdict
counts "ok 3, reset 1", evidence lines joined by " | "), not a Python list or
dict. Those would print as `[443]` and `{}`, and break what pandas users do
first (value_counts, drop_duplicates, groupby and merge need hashable cells;
to_csv would write Python reprs). The structured values stay in `report`
(`a.report["services"][i]["ports"]`), and `df.ports.str.split(", ")` splits one.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from functools import cached_property
from typing import TYPE_CHECKING, Any

from analyzer.catalogue import Catalogue, load_catalogue
from analyzer.diagnosis import Diagnosis, build_report, diagnose
from analyzer.engine import (
    EngineConfig,
    EngineResult,
    ProgressFn,
    relaxed_gc,
    run_engine,
)

if TYPE_CHECKING:
    import pandas as pd  # type: ignore[import-untyped]


class Analysis:
    """The result of analysing one or more captures."""

    def __init__(self, result: EngineResult, diagnosis: Diagnosis, catalogue: Catalogue) -> None:
        self.result = result
        self.diagnosis = diagnosis
        self.catalogue = catalogue
        self.report: dict[str, Any] = build_report(result, diagnosis, catalogue)

    @property
    def headline(self) -> str:
        return str(self.report["summary"]["headline"])

    # -- DataFrames ------------------------------------------------------------
    @cached_property
    def services(self) -> pd.DataFrame:
        return _frame(self.report["services"], ["flows", "attempts"])

    @cached_property
    def flows(self) -> pd.DataFrame:
        rows = []
        for f in self.report["flows"]:
            rows.append({
                "id": f["id"], "ts_start": f["ts_start"], "ts_end": f["ts_end"], "proto": f["proto"],
                "client_ip": f["client"]["ip"], "client_port": f["client"]["port"],
                "server_ip": f["server"]["ip"], "server_port": f["server"]["port"],
                "state": f["state"], "history": f["history"], "app": f["app"], "sni": f["sni"],
                "names": f["names"], "service": f["service"], "attribution": f["attribution"],
                "verdict": f["verdict"], "reason": f["reason"], "reset_by": f["reset_by"],
                "tls_version": (f["tls"] or {}).get("version"),
                "interception_product": (f["interception"] or {}).get("product"),
                "rtt": f["rtt"]["syn_synack"], "packets_c2s": f["packets"]["c2s"], "packets_s2c": f["packets"]["s2c"],
                "bytes_c2s": f["bytes"]["c2s"], "bytes_s2c": f["bytes"]["s2c"],
                "wireshark_filter": f["wireshark_filter"],
            })
        df = _frame(rows, ["client_port", "server_port", "packets_c2s", "packets_s2c", "bytes_c2s", "bytes_s2c"])
        return _times(df, ["ts_start", "ts_end"])

    @cached_property
    def dns(self) -> pd.DataFrame:
        rows = [{"ts": d["ts"], "client_ip": d["client"]["ip"], "server_ip": d["server"]["ip"],
                 "transport": d["transport"], "query": d["query"], "qtype": d["qtype"], "rcode": d["rcode"],
                 "answers": [a["data"] for a in d["answers"]], "chain": d["chain"], "addresses": d["addresses"],
                 "service": d["service"], "verdict": d["verdict"], "reason": d["reason"]}
                for d in self.report["dns"]]
        return _times(_frame(rows, [], separators={"chain": " -> "}), ["ts"])

    @cached_property
    def findings(self) -> pd.DataFrame:
        return _frame(self.report["findings"], [])

    # -- outputs ---------------------------------------------------------------
    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.report, indent=indent, default=str)

    def to_html(self, figures: dict[str, str] | None = None, **kwargs: Any) -> str:
        """The self-contained HTML report; figures are drawn when matplotlib is installed (figures={} for none)."""
        from analyzer import plots
        from analyzer.report.html import render_html

        if figures is None and plots.available():
            figures = plots.figures_for_html(self)
        return render_html(self.report, figures=figures, **kwargs)

    def _repr_html_(self) -> str:  # Jupyter shows the answer, not an object address
        return f"<b>{_escape(self.headline)}</b>"

    def __repr__(self) -> str:
        return f"<Analysis: {self.headline}>"


def _escape(text: str) -> str:
    from analyzer.report.escape import for_html

    return for_html(text)


# How the items of a list cell are joined; ", " for any other column.
_SEPARATORS = {"evidence": " | "}


def readable(value: Any, separator: str = ", ") -> Any:
    """A report value as one DataFrame cell: lists joined, {"ok": 3} as "ok 3", None and scalars as they are."""
    if isinstance(value, (list, tuple)):
        return separator.join(str(readable(v)) for v in value if v is not None)
    if isinstance(value, dict):
        return ", ".join(f"{k} {readable(v, '/')}" for k, v in value.items() if v not in (None, [], {}))
    return value


def _frame(rows: list[dict[str, Any]], int_cols: list[str], separators: dict[str, str] | None = None) -> pd.DataFrame:
    import pandas as pd

    joins = {**_SEPARATORS, **(separators or {})}
    df = pd.DataFrame([{k: readable(v, joins.get(k, ", ")) for k, v in row.items()} for row in rows])
    for col in int_cols:
        if col in df:
            df[col] = df[col].astype("Int64")
    for col in df.columns:
        if col not in int_cols and df[col].dtype == object:
            df[col] = df[col].astype("string")
    return df


def _times(df: pd.DataFrame, cols: list[str]) -> pd.DataFrame:
    import pandas as pd

    for col in cols:
        if col in df:
            df[col] = pd.to_datetime(df[col], unit="s", utc=True)
    return df


def analyze(
    paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
    *,
    edition: str | None = "current",
    signatures: str | os.PathLike[str] | None = None,
    all_services: bool = False,
    config: EngineConfig | None = None,
    progress: ProgressFn | None = None,
    client: str | None = None,
) -> Analysis:
    """Analyse captures (read in order into one flow table) and diagnose them against the catalogue.

    `client`: look at one device only: an IP address, a CIDR or a MAC address (every address of the device
    that the capture ties to it is kept). Raises ClientSpecError (an AnalyzerError) when it is none of these.
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    catalogue = load_catalogue(os.fspath(signatures) if signatures is not None else None, edition=edition)
    # Every flow stays alive until the report is built: without this the collector
    # rescans them all, again and again (15 % of the time on a 100 MB capture).
    with relaxed_gc():
        result = run_engine(list(paths), config, progress)
        return Analysis(result, diagnose(result, catalogue, all_services=all_services, client=client), catalogue)
