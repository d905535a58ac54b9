# noboxweb: `make run` serves the app on embedded defaults, `make test` runs every check.
# Each target installs what it needs first (a virtualenv in .venv, npm packages in node_modules).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
SIM_PORT ?= 8808
# Embedded defaults for a local run: DEBUG on, SQLite and secrets under var/, one process.
RUN_ENV := DEBUG=$${DEBUG:-1}
# daphne with the WebSocket limits of settings (MAX_FRAME_BYTES; close code 1009 above it):
# plain daphne stops at 1 MiB and drops the connection without a close code.
SERVE := $(BIN)/python -m noboxweb.serve -b $(HOST) -p $(PORT) noboxweb.asgi:application

.PHONY: run demo test lint typecheck pytest simulator bench setup clean

run: setup
	$(RUN_ENV) $(BIN)/python manage.py migrate --noinput
	$(RUN_ENV) $(BIN)/python manage.py ensure_admin
	@echo "Serving noboxweb at http://$(HOST):$(PORT)/"
	$(RUN_ENV) $(SERVE)

# Offline demo: the Nobox simulator on SIM_PORT and the app pointed at it, with its own database
# under var/demo/ and a user "demo" who already has a (simulator) token.
DEMO_ENV := $(RUN_ENV) NOBOX_VAR_DIR=var/demo NOBOX_BASE_URL=http://127.0.0.1:$(SIM_PORT)/_f_
demo: setup
	$(DEMO_ENV) $(BIN)/python manage.py migrate --noinput
	$(DEMO_ENV) $(BIN)/python manage.py ensure_admin --username demo --password demo-password
	echo "sim-demo-token" | $(DEMO_ENV) $(BIN)/python manage.py set_nobox_token demo
	$(BIN)/python -m chat.nobox.simulator --port $(SIM_PORT) & sim=$$!; \
	trap "kill $$sim" EXIT INT TERM; \
	echo "Sign in at http://$(HOST):$(PORT)/ as demo / demo-password, pick a model, chat."; \
	$(DEMO_ENV) $(SERVE)

simulator: setup
	$(BIN)/python -m chat.nobox.simulator --port $(SIM_PORT)

test: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy .
	$(BIN)/pytest

# The relay benchmark (bench/relay.py --help): e.g. `make bench BENCH_ARGS=--quick`.
bench: setup
	$(BIN)/python bench/relay.py $(BENCH_ARGS)

# Translations: each .po compiles to the .mo gettext reads (build output, not in git), again
# whenever the .po changes.
CATALOGUES := $(patsubst %.po,%.mo,$(wildcard locale/*/LC_MESSAGES/*.po))

setup: $(VENV)/.installed node_modules/.installed $(CATALOGUES)

%.mo: %.po $(VENV)/.installed
	$(BIN)/python -m chat.translations

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

clean:
	rm -rf $(VENV) node_modules staticfiles $(CATALOGUES)
