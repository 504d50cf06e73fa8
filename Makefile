# Two entry points a new machine needs (see README):
#   make demo   set up, then analyze the bundled sample capture
#   make test   set up (system packages too, as root), then run the whole test suite (lab included when root)
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check -q

.PHONY: venv demo test system-deps bench fuzz clean

# The compiled core (core/, Rust) is built by `pip install` when cargo is on PATH (~/.cargo/bin
# counts); as root without one, Debian's cargo is installed first. Without cargo the package
# installs and runs on the Python engine (one notice line when it runs). The core's sources
# are prerequisites: `make test` rebuilds it after they change.
export PATH := $(HOME)/.cargo/bin:$(PATH)
CORE_SOURCES := core/Cargo.toml $(wildcard core/src/*.rs core/src/*/*.rs)

$(VENV)/.installed: pyproject.toml setup.py $(CORE_SOURCES)
	@command -v cargo >/dev/null || [ "$(AS_ROOT)" != 1 ] || bash .ci/rust-toolchain.sh
	@command -v cargo >/dev/null || echo "apple-net: no Rust toolchain (cargo): installing without the compiled core (the Python engine runs instead)"
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -U pip
	$(PIP) install -e '.[test,plots,notebooks]'
	touch $@

venv: $(VENV)/.installed

demo: venv
	$(VENV)/bin/apple-net analyze samples/mixed_session.pcap --html report.html

# `make test` sets up everything itself (README: "Two commands"):
#   as root:  install the system packages (SYSTEM_DEPS: the lab's servers, tshark, chromium...,
#             the one list CI uses too), then the venv, then the whole suite with the lab.
#             The lab is expected: a lab that cannot run fails the run instead of skipping
#             (tests/lab/lab_gate.py). APPLE_NET_REQUIRE_LAB=0 in the environment overrides it.
#   not root: no packages can be installed, so the suite runs without the lab (`-m 'not lab'`)
#             and one line at the end says so. APPLE_NET_REQUIRE_LAB=1 runs the lab tests anyway
#             (and fails them: the lab needs root).
# AS_ROOT and SYSTEM_DEPS (a command) can be overridden (tests/test_setup.py drives both paths with them).
AS_ROOT     ?= $(if $(filter 0,$(shell id -u)),1,0)
SYSTEM_DEPS ?= bash .ci/lab-deps.sh
PYTEST      := -m pytest -q -p no:cacheprovider
LAB_SKIPPED := lab skipped: not root, so the network-namespace lab and its packages were left out (as root, make test installs them and runs the whole suite)

system-deps:
	$(SYSTEM_DEPS)

# Prerequisites run in order: the system packages (python3-venv among them) before the venv.
.NOTPARALLEL: test
ifeq ($(AS_ROOT),1)
test: system-deps venv
	APPLE_NET_REQUIRE_LAB=$${APPLE_NET_REQUIRE_LAB:-1} $(PY) $(PYTEST)
else
test: venv
	@case "$${APPLE_NET_REQUIRE_LAB:-0}" in ""|0|no|false) ;; *) exec $(PY) $(PYTEST);; esac; \
	status=0; $(PY) $(PYTEST) -m 'not lab' || status=$$?; \
	echo "$(LAB_SKIPPED)"; exit $$status
endif

bench: venv
	$(PY) bench/bench_matcher.py

# The long fuzz run (issue 17): FUZZ_MINUTES per target, FUZZ_TARGETS to choose (default all).
# Crashes are kept under tests/fixtures/fuzz/crashes/<target>/, where the test suite replays them.
FUZZ_MINUTES ?= 5
FUZZ_TARGETS ?=
fuzz: venv
	nice $(PY) bench/fuzz.py --minutes $(FUZZ_MINUTES) $(foreach t,$(FUZZ_TARGETS),--target $(t))

clean:
	rm -rf $(VENV) build *.egg-info
