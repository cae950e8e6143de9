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

## make synth: CloudFormation templates of every stage in infra/cdk/cdk.out (offline: package registries only)
## make deploy STAGE=dev: deploys one stage (AWS credentials + `cdk bootstrap` first: docs/deploy.md)
CDK_DIR := infra/cdk
CDK := $(CDK_DIR)/node_modules/.bin/cdk
STAGE ?= dev
CDK_DEPLOY_FLAGS ?= --require-approval broadening

$(CDK): $(CDK_DIR)/package.json $(CDK_DIR)/package-lock.json
	cd $(CDK_DIR) && npm ci --no-audit --no-fund
	@touch $(CDK)

synth: $(STAMP) $(CDK)
	@rm -rf $(CDK_DIR)/chalice.out
	cd $(CDK_DIR) && ./node_modules/.bin/cdk synth --no-notices --quiet

deploy: $(STAMP) $(CDK)
	@rm -rf $(CDK_DIR)/chalice.out
	cd $(CDK_DIR) && ./node_modules/.bin/cdk deploy $(STAGE) --context stages=$(STAGE) --no-notices $(CDK_DEPLOY_FLAGS)

clean:
	rm -rf $(VENV) .local cdk.out
	rm -rf $(CDK_DIR)/cdk.out $(CDK_DIR)/chalice.out $(CDK_DIR)/node_modules
