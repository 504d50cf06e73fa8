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

test: venv
	$(PY) -m pytest -q -p no:cacheprovider

bench: venv
	$(PY) bench/bench_matcher.py

clean:
	rm -rf $(VENV) build *.egg-info
