#!/usr/bin/env bash
# Debian stable's Rust toolchain (cargo, rustc), for building the compiled core (core/) when no
# cargo is on PATH. Needs root; the crate is kept within this rustc (Cargo.toml rust-version).
set -euo pipefail
command -v cargo >/dev/null && exit 0
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends cargo rustc >/dev/null
