"""`apple-net lab --out DIR`: build the network-namespace lab and write every failure scenario's capture."""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser("lab", help="write real captures of each failure scenario (needs root and ip netns)",
                       description="Build a throwaway network of namespaces (client Mac, router with firewall, DNS "
                       "and inspection proxies, Apple-like servers in 17.0.0.0/8), run every scenario with real "
                       "software, and write one capture per scenario plus truth.json and a README.",
                       add_help=False)
    p.add_argument("lab_args", nargs=argparse.REMAINDER, help="--out DIR [--scenario NAME]... | --list | --cleanup | --help")
    p.set_defaults(func=cmd_lab)


def run(argv: list[str]) -> int:
    # Imported here: the lab pulls in process and namespace helpers nobody else needs.
    from analyzer.lab.runner import main

    return main(argv)


def cmd_lab(args: argparse.Namespace) -> int:
    return run(list(args.lab_args))
