#!/usr/bin/env bash
# Install the system packages the test suite needs: the one list, used by `make test`
# as root and so by CI (.ci/run runs `make test`). Idempotent; needs root.
#   `--list` prints the Debian packages, one a line, and exits (no root needed).
#   Debian packages: the servers, firewall, capture and client tools the lab runs (PKGS),
#   and what other tests use (TEST_PKGS).
#   aiosmtpd (the lab's SMTP submission server) comes with the project's test extra (pyproject.toml).
#   mitmproxy: in its own venv (/opt/apple-net-lab/mitm-venv), because its pinned
#   dependencies must not clash with the project's venv.
#   aioquic (HTTP/3 server and client of the web scenarios) comes with the project's
#   `test` extra: the lab runs it with the project's own Python.
set -euo pipefail

PKGS=(
    iproute2 iptables nftables conntrack ethtool    # namespaces, veth, firewall, conntrack flush
    tcpdump tshark                                   # capture; tshark reads the captures in tests
    nginx openssl chrony                             # Apple-like servers (TLS 443/5223, HTTP 80, NTP)
    dnsmasq unbound                                  # resolver; unbound for the DNSSEC-bogus SERVFAIL
    squid-openssl                                    # explicit proxy + ssl-bump interception
    curl dnsutils                                    # clients (curl; dig for people poking at the lab)
    ntpsec-ntpdig                                    # a real SNTP client (ntpsec; ntpd itself conflicts with chrony)
    tcpreplay                                        # live-capture tests replay lab captures on a veth
    python3-venv                                     # for the mitmproxy venv
)
# Outside the lab: tshark (above) for differential tests; libndpi-bin: the benchmark's peer;
# chromium + a font: the HTML report is rendered and screenshotted headless; make: `make test`.
# cargo + rustc: Debian stable's Rust, which builds the compiled core (core/) when no newer
# toolchain is on PATH, and which tests/test_native_build.py builds it with (the oldest supported).
TEST_PKGS=(make libndpi-bin chromium fonts-dejavu-core ca-certificates cargo rustc)

if [ "${1:-}" = --list ]; then
    printf '%s\n' "${PKGS[@]}" "${TEST_PKGS[@]}"
    exit 0
fi
if [ "$(id -u)" != 0 ]; then
    echo "lab-deps: not root, skipping (the lab tests will skip too)" >&2
    exit 0
fi


missing=()
for p in "${PKGS[@]}" "${TEST_PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # tshark asks whether non-root users may capture; answer no without a prompt.
    echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

MITM_VENV=${APPLE_NET_LAB_MITM_VENV:-/opt/apple-net-lab/mitm-venv}
if [ ! -x "$MITM_VENV/bin/mitmdump" ]; then
    PY=${LAB_PYTHON:-python3}
    mkdir -p "$(dirname "$MITM_VENV")"
    "$PY" -m venv "$MITM_VENV"
    log=$(mktemp)
    if ! "$MITM_VENV/bin/python" -m pip install -q --disable-pip-version-check mitmproxy >"$log" 2>&1; then
        cat "$log" >&2
        rm -f "$log"
        exit 1
    fi
    rm -f "$log"
fi
"$MITM_VENV/bin/mitmdump" --version | sed -n 1p
echo "lab-deps: ok"
