# Two commands do all set-up: `make run` (the main job) and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export OMP_NUM_THREADS ?= 2

.PHONY: run test e2e venv lint bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)

# Re-install when the project metadata changes; torch first, pinned to the local CPU build.
$(STAMP): $(PY) pyproject.toml setup.py
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e ".[dev,postgres]"
	touch $(STAMP)

venv: $(STAMP)

run: $(STAMP)
	$(PY) -m decisionlab.apps.run

test: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m pytest -q -n 2 --dist loadfile -m "not slow and not e2e"

# Browser tests: headless Chromium drives the dashboard (installs playwright and Debian's chromium).
e2e: $(STAMP)
	$(PY) -m pip install --quiet -e ".[dev,e2e]"
	command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium)
	$(PY) -m pytest -q -m e2e tests/e2e

lint: $(STAMP)
	$(PY) -m ruff check .

bench: $(STAMP)
	$(PY) -m benchmarks.inventory_throughput
	$(PY) -m benchmarks.inventory_hdpo_grid

clean:
	rm -rf $(VENV) .pytest_cache
