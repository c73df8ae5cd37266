# FedoraCloud's front door: `make run` (the demo) and `make test` (the whole suite).

PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
INI    ?= development.ini
HOST   ?= 127.0.0.1
PORT   ?= 6543
export PYTHONWARNINGS ?= ignore::UserWarning:pyramid.asset

.PHONY: assets screenshots run test test-sqlite test-postgresql test-postgresql-db lint bench rehearsal system-packages test-packages venv clean

system-packages:
	@scripts/install-system-packages

test-packages:
	@scripts/install-system-packages test

$(BIN)/.installed: setup.py | system-packages
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -U pip setuptools wheel
	$(BIN)/pip install -q -e '.[dev]'
	@touch $@

venv: system-packages $(BIN)/.installed

## run: set everything up, load the demo and serve it on http://localhost:6543
run: venv
	$(BIN)/fedoracloud -c $(INI) initdb
	$(BIN)/fedoracloud -c $(INI) demo
	@echo
	@echo "  FedoraCloud demo: http://localhost:$(PORT)/"
	@echo "  Log in as 'admin' with the password in var/demo-admin-password:"
	@echo "    $$(cat var/demo-admin-password 2>/dev/null || echo '(see fedoracloud user add admin)')"
	@echo
	$(BIN)/fedoracloud -c $(INI) serve --host $(HOST) --port $(PORT)

## test: lint, the whole suite on SQLite and, on PostgreSQL, every test that depends on the
## database (the rest, libvirt, Puppet, login servers…, would only repeat), all three at
## once (the tests wait on guests, daemons and servers as much as they compute); each
## one's output is shown when it ends
test: venv test-packages
	@$(MAKE) --no-print-directory -j3 --output-sync=target lint test-sqlite test-postgresql-db

# pytest-xdist: TEST_WORKERS processes, each with its own database, ports, namespaces and
# libvirt names; a test file stays on one worker (its module fixtures start once).
# TEST_WORKERS=0 runs in this process; --durations shows where the time goes
TEST_WORKERS ?= 2
PYTEST = $(BIN)/pytest -n $(TEST_WORKERS) --dist loadfile --durations=25

test-sqlite: venv test-packages
	$(PYTEST) --db=sqlite tests

test-postgresql: venv test-packages
	$(PYTEST) --db=postgresql tests

test-postgresql-db: venv test-packages
	$(PYTEST) --db=postgresql --only-db-tests tests

## lint: ruff (lint + format) and mypy
lint: venv
	$(BIN)/ruff check fedoracloud tests benchmarks alembic/env.py
	$(BIN)/ruff format --check fedoracloud tests benchmarks alembic/env.py
	$(BIN)/mypy

## rehearsal: the split deployment on this machine (deploy/): two app instances behind Apache's
## balancer, two workers, two event listeners, a private libvirtd; drive it, kill parts of it
rehearsal: venv test-packages
	$(BIN)/python scripts/rehearsal

## bench: scale benchmarks on PostgreSQL; prints a table, writes benchmarks/results.json
bench: venv test-packages
	$(BIN)/python -m benchmarks.run
	$(BIN)/python -m benchmarks.load
	$(BIN)/python -m benchmarks.enc
	$(BIN)/python -m benchmarks.cli
	$(BIN)/python -m benchmarks.tasks
	$(BIN)/python -m benchmarks.virt --migration 6
	$(BIN)/python -m benchmarks.vms
	$(BIN)/python -m benchmarks.storage
	$(BIN)/python -m benchmarks.consoles
	$(BIN)/python -m benchmarks.graphs
	$(BIN)/python -m benchmarks.enrollment
	$(BIN)/python -m benchmarks.vm_requests
	$(BIN)/python -m benchmarks.ip_allocation
	$(BIN)/python -m benchmarks.pages
	$(BIN)/python -m benchmarks.openapi

## screenshots: the main pages in Chromium (the browser tests' live server), into docs/screenshots/
screenshots: venv test-packages
	FEDORACLOUD_SCREENSHOTS=docs/screenshots $(BIN)/pytest -q -m browser tests/browser/test_screenshots.py

## assets: rebuild fedoracloud/static/vendor/ from package-lock.json (npm; the output is committed)
assets:
	@scripts/vendor-assets

clean:
	rm -rf $(VENV) var *.egg-info .pytest_cache .mypy_cache .ruff_cache
