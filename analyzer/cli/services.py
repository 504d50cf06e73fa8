"""`apple-net services`: list, look up and export the Apple service catalogue."""

from __future__ import annotations

import argparse
import ipaddress
import json
import sys
from typing import Any

from analyzer.catalogue import EDITIONS, Catalogue, Matcher, load_catalogue
from analyzer.catalogue.export import EXPORTERS, FORMATS, export_csv, export_json, pac_return_value
from analyzer.catalogue.model import Entry, Proxy
from analyzer.cli.output import write_text
from analyzer.errors import AnalyzerError
from analyzer.report.terminal import make_console, plain_table

PROXY_TEXT = {
    Proxy.YES: "yes",
    Proxy.NO: "no",
    Proxy.APNS_NOTE: "see APNs note",
    Proxy.UNKNOWN: "unknown",
}


def _add_catalogue_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--edition", choices=EDITIONS, default="current",
                   help="which edition of Apple's article to use (default: current; 'seed' = the Dutch seed edition)")
    p.add_argument("--signatures", metavar="DIR", help="use this signatures directory instead of the packaged one")
    p.add_argument("--lang", choices=("en", "nl"), default="en",
                   help="language of headings, OS and descriptions (default en; nl: the Dutch text of the seed "
                   "edition, as the data keeps it)")


def register(sub: Any) -> None:
    p = sub.add_parser("services", help="list, look up and export the Apple service catalogue",
                       description="List the Apple service catalogue (hosts, ports, protocols, proxy support).")
    _add_catalogue_options(p)
    p.add_argument("--section", help="only this section (key, or text in its Dutch/English name)")
    p.add_argument("--host", help="only entries whose host contains this text")
    p.add_argument("--format", choices=("table", "json", "csv"), default="table")
    p.add_argument("-o", "--output", metavar="PATH", help="write to PATH instead of stdout")
    p.set_defaults(func=cmd_list)
    ssub = p.add_subparsers(dest="services_command", metavar="SUBCOMMAND")

    lk = ssub.add_parser("lookup", help="which catalogue entries match a host name, NAME:PORT or an address",
                         description="Say which catalogue entries match, which ports are documented, proxy support, "
                         "whether the service rejects HTTPS inspection, and which rule matched.")
    _add_catalogue_options(lk)
    lk.add_argument("target", nargs="+", metavar="NAME[:PORT]|IP")
    lk.add_argument("--udp", action="store_true", help="the port is UDP (default TCP)")
    lk.add_argument("--format", choices=("text", "json"), default="text")
    lk.set_defaults(func=cmd_lookup)

    ex = ssub.add_parser("export", help="write an allow-list / HTTPS-inspection bypass list",
                         description="pac: a PAC file sending Apple hosts DIRECT; squid: an ssl_bump splice ACL; "
                         "domains/cidrs: plain lists for firewall external lists; csv/json: the catalogue.")
    _add_catalogue_options(ex)
    ex.add_argument("--format", choices=FORMATS, required=True)
    ex.add_argument("--include-guidance", action="store_true",
                    help="also include the firewall guidance (*.apple.com, 17.0.0.0/8)")
    ex.add_argument("--proxy", default=None, metavar="'PROXY host:port'", type=_pac_proxy,
                    help="PAC only: what non-Apple hosts get, a PAC return value: DIRECT or PROXY|SOCKS|SOCKS4|"
                    "SOCKS5|HTTP|HTTPS host:port, ';'-separated (default: a placeholder to replace)")
    ex.add_argument("-o", "--output", metavar="PATH", help="write to PATH instead of stdout")
    ex.set_defaults(func=cmd_export)


def _pac_proxy(value: str) -> str:
    """--proxy goes into the PAC file's JavaScript: only what the PAC grammar allows gets there."""
    try:
        return pac_return_value(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _load(args: argparse.Namespace) -> Catalogue:
    return load_catalogue(args.signatures, edition=args.edition)


def _filter(cat: Catalogue, section: str | None, host: str | None) -> list[Entry]:
    entries = list(cat.entries)
    if section:
        s = section.casefold()
        keys = {k for k, v in cat.sections.items() if s == k or s in v.nl.casefold() or s in v.en.casefold()}
        if not keys:
            raise AnalyzerError(f"no section matches {section!r} (see `apple-net services` for the list)")
        entries = [e for e in entries if e.section in keys or cat.sections[e.section].parent in keys]
    if host:
        entries = [e for e in entries if host.casefold() in e.host.casefold()]
    order = {k: s.order for k, s in cat.sections.items()}
    return sorted(entries, key=lambda e: (order[e.section], cat.entries.index(e)))


def cmd_list(args: argparse.Namespace) -> int:
    cat = _load(args)
    entries = _filter(cat, args.section, args.host)
    sub = Catalogue(cat.sections, cat.sources, tuple(entries), cat.apple_issuers, cat.inspection_products, cat.edition,
                    cat.sinkholes)
    if args.format == "json":
        write_text(export_json(sub), args.output)
    elif args.format == "csv":
        write_text(export_csv(sub), args.output)
    else:
        nl = args.lang == "nl"
        rows = [
            (cat.sections[e.section].title(args.lang), e.host, ", ".join(map(str, e.ports)) or "any", e.protocol,
             (e.os_text if nl else e.os_en) or "-", PROXY_TEXT[e.proxy],
             (e.description_nl if nl else "") or e.description_en or "-")
            for e in entries
        ]
        table = plain_table(("Section", "Host", "Ports", "Protocol", "OS", "Proxy", "Description"), rows,
                            title=f"Apple service catalogue ({cat.edition} edition): {len(entries)} entries")
        write_text(make_console().render_to_text(table), args.output)
    return 0


def _split_target(target: str) -> tuple[str, int | None]:
    """NAME, NAME:PORT, IPv4, IPv4:PORT, IPv6, [IPv6]:PORT."""
    t = target.strip()
    if t.startswith("["):
        host, _, rest = t[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    else:
        try:
            ipaddress.ip_address(t)
            return t, None
        except ValueError:
            pass
        host, sep, port = t.rpartition(":")
        if not sep:
            host, port = t, ""
    if port:
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise AnalyzerError(f"{target!r}: port must be a number 1-65535")
        return host, int(port)
    return host, None


def _lookup_one(matcher: Matcher, cat: Catalogue, target: str, transport: str) -> dict[str, Any]:
    host, port = _split_target(target)
    matches = matcher.lookup(host)
    out: dict[str, Any] = {"query": host, "port": port, "transport": transport, "matched": bool(matches), "matches": []}
    for m in matches:
        entries = []
        for e in m.entries:
            entries.append({
                "id": e.id,
                "section": cat.sections[e.section].en,
                "section_nl": cat.sections[e.section].nl,
                "os": list(e.os),
                "os_en": e.os_en,
                "os_text": e.os_text,
                "description_nl": e.description_nl,
                "host": e.host,
                "ports": list(e.ports),
                "protocol": e.protocol,
                "transport": e.transport,
                "port_documented": e.documents(port, transport) if port is not None else None,
                "port_role": e.port_role(port) if port is not None else None,
                "proxy": e.proxy.value,
                "description": e.description_en,
                "private_ca": e.private_ca,
                "source": e.source,
                "ref": e.ref,
                "status": e.status.value,
            })
        out["matches"].append({"pattern": m.pattern, "rule": m.rule, "entries": entries})
    if matches:
        best = matches[0]
        documented = best.documented(port, transport) if port is not None else best.entries
        any_level = [m for m in matches if m.documented(port, transport)] if port is not None else matches
        out["best"] = best.pattern
        out["port_documented"] = None if port is None else bool(documented)
        out["documented_by"] = any_level[0].pattern if any_level else None
        out["rejects_https_inspection"] = True
        reasons = ["Apple's article: Apple services fail any connection that uses HTTPS interception (SSL inspection)"]
        if any(e.private_ca for m in matches for e in m.entries):
            reasons.append("this host presents a certificate from Apple's private CA (Apple Server Authentication CA "
                           "-> Apple Root CA), which inspecting proxies cannot validate upstream")
        if any(e.alpn for m in matches for e in m.entries):
            reasons.append("APNs uses mutual TLS with a device certificate: no proxy can complete it while decrypting")
        out["inspection_reasons"] = reasons
    return out


def _print_lookup(r: dict[str, Any], lang: str = "en") -> str:
    lines: list[str] = []
    q = r["query"] + (f":{r['port']}/{r['transport']}" if r["port"] is not None else "")
    if not r["matched"]:
        return f"{q}: not in the catalogue\n"
    lines.append(f"{q}: matches {len(r['matches'])} pattern(s); best: {r['best']}")
    for m in r["matches"]:
        lines.append(f"  {m['pattern']}  [{m['rule']}]")
        for e in m["entries"]:
            ports = ", ".join(map(str, e["ports"])) or "any"
            flag = ""
            if e["port_documented"] is True:
                flag = "  port documented" + (f" ({e['port_role']})" if e["port_role"] else "")
            elif e["port_documented"] is False:
                flag = "  port NOT documented here"
            # English by default; --lang nl leads with the seed's Dutch heading and text.
            section = f"{e['section_nl']} ({e['section']})" if lang == "nl" and e["section_nl"] else e["section"]
            os_text = e["os_text"] if lang == "nl" else e["os_en"]
            lines.append(f"    - {section}: {e['protocol']} {ports}" + (f" ({os_text})" if os_text else "")
                         + f"; proxy: {PROXY_TEXT[Proxy(e['proxy'])]}{flag}")
            description = (e["description_nl"] if lang == "nl" else "") or e["description"]
            if description:
                lines.append(f"      {description}")
            lines.append(f"      id {e['id']}, source {e['source']} ({e['ref']})"
                         + (f", status {e['status']}" if e["status"] != "listed" else ""))
    if r["port"] is not None:
        if r["port_documented"]:
            lines.append(f"  port {r['port']}/{r['transport']} is documented for {r['best']}")
        elif r["documented_by"]:
            lines.append(f"  port {r['port']}/{r['transport']} is not documented for {r['best']}, "
                         f"only under the broader {r['documented_by']}")
        else:
            lines.append(f"  port {r['port']}/{r['transport']} is not documented for this host")
    lines.append("  rejects HTTPS inspection: yes")
    for why in r["inspection_reasons"]:
        lines.append(f"    because {why}")
    return "\n".join(lines) + "\n"


def cmd_lookup(args: argparse.Namespace) -> int:
    cat = _load(args)
    matcher = Matcher(cat)
    transport = "udp" if args.udp else "tcp"
    results = [_lookup_one(matcher, cat, t, transport) for t in args.target]
    if args.format == "json":
        write_text(json.dumps(results if len(results) > 1 else results[0], indent=2) + "\n", None)
    else:
        write_text("".join(_print_lookup(r, args.lang) for r in results), None)
    return 0 if all(r["matched"] for r in results) else 1


def cmd_export(args: argparse.Namespace) -> int:
    cat = _load(args)
    kwargs: dict[str, Any] = {"include_guidance": args.include_guidance}
    if args.format == "pac" and args.proxy:
        kwargs["fallback"] = args.proxy
    elif args.proxy:
        print("apple-net: --proxy only applies to --format pac", file=sys.stderr)
        return 2
    write_text(EXPORTERS[args.format](cat, **kwargs), args.output)
    return 0
