# Two entry points a new machine needs (see README):
#   make demo   set up, then analyze the bundled sample capture
#   make test   set up, then run the whole test suite (lab included when root)
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check -q

.PHONY: venv demo test bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -U pip
	$(PIP) install -e '.[test,plots,notebooks]'
	touch $@

venv: $(VENV)/.installed

demo: venv
	$(VENV)/bin/apple-net analyze samples/mixed_session.pcap --html report.html

# As root the lab is expected: a lab that cannot run fails the run instead of skipping
# (tests/lab/lab_gate.py). APPLE_NET_REQUIRE_LAB=0 in the environment overrides it.
test: venv
	APPLE_NET_REQUIRE_LAB=$${APPLE_NET_REQUIRE_LAB:-$$(if [ "$$(id -u)" = 0 ]; then echo 1; else echo 0; fi)} \
	$(PY) -m pytest -q -p no:cacheprovider

bench: venv
	$(PY) bench/bench_matcher.py

clean:
	rm -rf $(VENV) build *.egg-info
