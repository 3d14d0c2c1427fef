# Two commands do all set-up on a fresh machine:
#   make run    install, build/refresh the index over corpus/, serve http://127.0.0.1:8000
#   make test   install what the tests need and run them
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
QA := $(VENV)/bin/qa
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run install install-test index serve test test-fast bench clean

run: index serve

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

# torch first, pinned: an unpinned torch (pulled in by sentence-transformers) is a multi-GB CUDA build.
$(VENV)/.installed: pyproject.toml | $(PY)
	$(PIP) install --quiet torch==2.13.0
	$(PIP) install --quiet -e .
	touch $@

install: $(VENV)/.installed

$(VENV)/.installed-test: $(VENV)/.installed pyproject.toml
	$(PIP) install --quiet -e '.[test]'
	touch $@

# The browser tests drive Debian's chromium through Playwright (never `playwright install`: offline).
# Skipped when /usr/bin/chromium is already there; the CJK font makes Chinese legible in screenshots.
install-test: $(VENV)/.installed-test
	@if [ ! -x /usr/bin/chromium ]; then \
	  if command -v apt-get >/dev/null; then \
	    SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	    $$SUDO apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium chromium-driver fonts-wqy-microhei \
	      || echo "warning: chromium could not be installed; the browser tests will be skipped"; \
	  else \
	    echo "no apt-get: install chromium at /usr/bin/chromium yourself, or the browser tests are skipped"; \
	  fi; \
	fi

# Incremental: a no-op when corpus/ is unchanged, re-embeds only changed files otherwise.
index: install
	$(QA) ingest corpus/

serve: install
	$(QA) serve --host $(HOST) --port $(PORT)

test: install-test
	$(PY) -m pytest -q

# The fast tier: no model, no server, no browser (a minute on 2 cores).
test-fast: $(VENV)/.installed-test
	$(PY) -m pytest -q -m "not model and not server and not browser"

bench: install-test
	$(PY) bench/ingest_and_ask.py

clean:
	rm -rf index/gen-* index/CURRENT
