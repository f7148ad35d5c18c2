# The two commands a new user needs:  make demo   and   make test
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: demo demo-check test test-services bench clean

$(STAMP): pyproject.toml scripts/bootstrap.sh
	@PYTHON=$(PYTHON) VENV=$(VENV) bash scripts/bootstrap.sh
	@touch $(STAMP)

demo: $(STAMP)  ## embedded broker + SQLite + central + two simulated stores
	$(BIN)/storeguard demo

demo-check: $(STAMP)  ## the same demo headless; exits 0 when the loop closed
	$(BIN)/storeguard demo --check

test-services:
	@bash scripts/test-services.sh

test: $(STAMP) test-services  ## the whole suite (private Mosquitto and PostgreSQL are started by the tests)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
