# Two commands matter: `make run` (the stack, locally) and `make test` (the test suite).
# Both create .venv and install the project into it first when needed.
# They need PostgreSQL on 127.0.0.1:5432 and Redis on 127.0.0.1:6379 (see README).

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install node-sdk run test test-fast lint env-example clean

$(BIN)/.installed: pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is needed, found " + sys.version.split()[0])'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $@

install: $(BIN)/.installed

# The JavaScript SDK for tests/e2e/test_node_sdk.py; skipped (and that test skips) without npm.
NODE_SDK := tests/e2e/node/node_modules/.package-lock.json
$(NODE_SDK): tests/e2e/node/package-lock.json
	@if ! command -v npm >/dev/null 2>&1; then echo "npm not found: the JavaScript SDK test will be skipped"; \
	elif ! npm ci --prefix tests/e2e/node --no-audit --no-fund --loglevel=error; then \
	echo "npm ci failed: the JavaScript SDK test will be skipped"; fi

node-sdk: $(NODE_SDK)

run: install
	$(BIN)/observatory up

test: install node-sdk
	$(BIN)/pytest

test-fast: install
	$(BIN)/pytest -m 'not e2e'

env-example: install
	$(BIN)/observatory config env-example > .env.example

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
