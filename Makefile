# Two commands for a newcomer: `make app` (install + start the app) and `make test` (install + run the tests).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
APP_STAMP := $(VENV)/.app-$(shell cat requirements.txt | sha1sum | cut -c1-12)
DEV_STAMP := $(VENV)/.dev-$(shell cat requirements.txt requirements-dev.txt | sha1sum | cut -c1-12)

.PHONY: app test test-all install install-dev browser lint

$(VENV)/bin/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(APP_STAMP): requirements.txt | $(VENV)/bin/python
	$(BIN)/pip install -q -r requirements.txt
	touch $@

$(DEV_STAMP): requirements.txt requirements-dev.txt | $(VENV)/bin/python
	$(BIN)/pip install -q -r requirements-dev.txt
	touch $@ $(APP_STAMP)

install: $(APP_STAMP)
install-dev: $(DEV_STAMP)

app: install
	$(BIN)/python app.py

# Debian's chromium drives the real-browser tests (never `playwright install`).
browser:
	@command -v chromium >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

test: install-dev browser
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q -m "not heavy"

# Adds the SciFact-wide and reranked expected-quality checks (first run encodes SciFact: minutes).
test-all: install-dev browser
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q

lint: install-dev
	$(BIN)/ruff check .
