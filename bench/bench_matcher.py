"""Micro-benchmark: attributing a million flows to catalogue entries.

Each synthetic flow has a server name (from SNI or DNS) or only an address, a
port and a transport, drawn from a realistic mix: mostly Apple names (APNs
couriers, iCloud shards, CDN hosts), some non-Apple names, and address-only
flows inside and outside Apple's ranges. Target (issue 2): well under a second
for 1,000,000 flows.

    python bench/bench_matcher.py [--flows N]
"""

from __future__ import annotations

import argparse
import random
import time

from analyzer.catalogue import Matcher, load_catalogue


def make_flows(n: int, seed: int = 7) -> list[tuple[str | None, str, int, str]]:
    rnd = random.Random(seed)
    apple = [f"{i}-courier.push.apple.com" for i in range(1, 51)]
    apple += [f"p{i}-caldav.icloud.com" for i in range(1, 200)]
    apple += ["gs.apple.com", "gsa.apple.com", "mesu.apple.com", "swcdn.apple.com", "gdmf.apple.com", "time.apple.com",
              "ocsp2.apple.com", "valid.apple.com", "updates.cdn-apple.com", "is1-ssl.mzstatic.com", "xp.apple.com",
              "gateway.icloud.com", "api.apple-cloudkit.com", "doh.dns.apple.com", "init.itunes.apple.com"]
    other = [f"host{i}.example.com" for i in range(2000)] + ["www.google.com", "teams.microsoft.com"]
    ips = [f"17.{rnd.randrange(256)}.{rnd.randrange(256)}.{rnd.randrange(256)}" for _ in range(3000)]
    ips += [f"203.0.{rnd.randrange(256)}.{rnd.randrange(256)}" for _ in range(3000)]
    ips += [f"2620:149:a44::{rnd.randrange(65536):x}" for _ in range(500)]
    ports = [443, 443, 443, 5223, 80, 123, 8443]
    flows: list[tuple[str | None, str, int, str]] = []
    for _ in range(n):
        r = rnd.random()
        name = rnd.choice(apple) if r < 0.6 else rnd.choice(other) if r < 0.85 else None
        port = rnd.choice(ports)
        flows.append((name, rnd.choice(ips), port, "udp" if port == 123 else "tcp"))
    return flows


def attribute(matcher: Matcher, flows: list[tuple[str | None, str, int, str]]) -> int:
    hits = 0
    attribute_one = matcher.attribute
    for name, ip, port, transport in flows:
        if attribute_one(name, ip, port, transport) is not None:
            hits += 1
    return hits


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--flows", type=int, default=1_000_000)
    args = ap.parse_args()
    t0 = time.perf_counter()
    matcher = Matcher(load_catalogue(edition="current"))
    t_load = time.perf_counter() - t0
    flows = make_flows(args.flows)
    t0 = time.perf_counter()
    hits = attribute(matcher, flows)
    elapsed = time.perf_counter() - t0
    print(f"catalogue load + index: {t_load * 1000:.1f} ms ({len(matcher.catalogue.entries)} entries)")
    print(f"attributed {args.flows:,} flows ({hits:,} matched) in {elapsed:.3f} s "
          f"= {args.flows / elapsed / 1e6:.2f} M flows/s")


if __name__ == "__main__":
    main()
