# Blacksmith Mini. `make run` starts it on its embedded defaults; `make test` runs every check.
SHELL := /bin/bash
export UV_PYTHON_DOWNLOADS := never
export NEXT_TELEMETRY_DISABLED := 1
UV := $(shell bash scripts/ensure-uv.sh)
PORT ?= 8000
HAVE_CHROMIUM := $(shell test -x /usr/bin/chromium && echo yes)

.PHONY: setup run web test lint typecheck pytest frontend-test e2e bench wheel clean

setup: .venv/.synced

.venv/.synced: pyproject.toml uv.lock
	$(UV) sync --frozen
	@touch $@

web: setup
	bash scripts/build-frontend.sh

# The API starts at once; the dashboard is built beside it and served as soon as it exists.
run: setup
	@mkdir -p .blacksmith
	@(bash scripts/build-frontend.sh > .blacksmith/web-build.log 2>&1 \
	  && echo "dashboard built" || echo "dashboard build failed: see .blacksmith/web-build.log") &
	$(UV) run blacksmith-mini up --simulate --port $(PORT)

lint: setup
	$(UV) run ruff check src tests bench
	$(UV) run ruff format --check src tests bench
	$(UV) run lint-imports
	$(UV) run python -m blacksmith_mini.config_reference --check

typecheck: setup
	$(UV) run mypy

pytest: setup
	$(UV) run pytest -m "not e2e" -q

frontend-test: web
	cd frontend && npm run --silent typecheck && npm run --silent lint && npm test
	bash scripts/gen-api-types.sh --check

e2e: setup web
	@if [ "$(HAVE_CHROMIUM)" = yes ]; then $(UV) run pytest -m e2e -q tests/e2e; \
	else echo "e2e: /usr/bin/chromium not found, browser tests skipped (apt-get install chromium)"; fi

test: lint typecheck pytest frontend-test e2e

bench: setup
	$(UV) run python bench/planner_bench.py
	$(UV) run python bench/github_bench.py
	$(UV) run python bench/load_bench.py
	@if [ -f bench/fault_report.py ]; then $(UV) run python bench/fault_report.py; fi

wheel: web  # dist/blacksmith_mini-*.whl with the dashboard and images/ (hatch_build.py)
	$(UV) build --wheel

clean:
	rm -rf .venv .tools frontend/out frontend/node_modules .blacksmith
