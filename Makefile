# chatgate: `make run` serves on http://127.0.0.1:8000, `make test` runs every test.
# Both set up everything first, into .venv (the first time compiles llama-cpp-python: ~10 min).

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install run test lint typecheck bench clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

run: install ui
	$(BIN)/chatgate serve

lint: install
	$(BIN)/ruff check src tests bench robustness
	$(BIN)/ruff format --check src tests bench robustness

typecheck: install
	$(BIN)/mypy src

test: install lint typecheck ui ui-test chromium
	$(BIN)/python -m pytest

bench: install
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache

.PHONY: fuzz
fuzz: install
	@echo "Long schemathesis run (~2 min). The other robustness runs (robustness/README.md):"
	@echo "  soak, RSS over 3 min:  $(BIN)/python -m robustness.soak --minutes 3"
	@echo "  fault matrix:          $(BIN)/python -m robustness.faults --repeats 20"
	@echo "  outage matrix:         $(BIN)/python -m robustness.outages --repeats 3"
	$(BIN)/python -m robustness.fuzz --examples 300 --report-dir test-artifacts/fuzz

# ---- web UI: frontend/ (React + TypeScript + Vite) built into src/chatgate/static/ ----------
UI_DIR  := frontend
UI_OUT  := src/chatgate/static/index.html
UI_DEPS := $(UI_DIR)/node_modules/.installed
UI_SRC  := $(shell find $(UI_DIR)/src $(UI_DIR)/public -type f 2>/dev/null) \
           $(addprefix $(UI_DIR)/,index.html vite.config.ts tsconfig.json eslint.config.js)
# Browser tests drive Debian's /usr/bin/chromium; nothing may download a browser build.
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD := 1

.PHONY: ui ui-test chromium

$(UI_DEPS): $(UI_DIR)/package.json $(UI_DIR)/package-lock.json
	cd $(UI_DIR) && npm ci --no-audit --no-fund
	@touch $@

$(UI_OUT): $(UI_DEPS) $(UI_SRC)
	cd $(UI_DIR) && npm run build

ui: $(UI_OUT)

ui-test: $(UI_DEPS)
	cd $(UI_DIR) && npm run check-lock && npm run lint && npm run typecheck && npm test

chromium:
	@if [ ! -x /usr/bin/chromium ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "Installing Debian's chromium for the browser tests (tests/e2e)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	  else \
	    echo "No /usr/bin/chromium and not root: tests/e2e will skip (and fail with CI=true)"; \
	  fi; \
	fi
