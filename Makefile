# Two commands do everything: `make run` and `make test` (see README.md).
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat requirements.txt requirements-dev.txt | sha1sum | cut -c1-12)

.PHONY: run test bench synth deploy clean venv

$(STAMP): requirements.txt requirements-dev.txt
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info[:2] < (3, 11) and "Python >= 3.11 is required")'
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check -q -r requirements-dev.txt
	@rm -f $(VENV)/.installed-* && touch $(STAMP)

venv: $(STAMP)

## make run: the whole stack on 127.0.0.1 with demo data (Ctrl-C stops it)
run: $(STAMP)
	$(PY) -m infra.local.run

## make test: installs what tests need, starts their servers, runs everything, stops them
test: $(STAMP)
	@bash infra/local/ensure-test-deps.sh
	$(PY) -m pytest $(PYTEST_ARGS)

## make bench: benchmark figures (printed, not asserted)
bench: $(STAMP)
	$(PY) -m benchmarks.run

clean:
	rm -rf $(VENV) .local cdk.out
