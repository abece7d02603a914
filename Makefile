# Two commands do all set-up: `make run` (the main job) and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
RUN_STAMP := $(VENV)/.installed-run
STAMP := $(VENV)/.installed
export OMP_NUM_THREADS ?= 2
# "Python compiles what it imports" only holds where it may write the .pyc files: with
# PYTHONDONTWRITEBYTECODE set (some CI images set it), every process of the tests (notebook kernels,
# uvicorn and streamlit servers, registry workers) compiled torch and the rest from source again.
unexport PYTHONDONTWRITEBYTECODE

.PHONY: run test e2e figures venv lint bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)

# Re-install when the project metadata changes; torch first, pinned to the local CPU build. `make run`
# needs only what the product runs on; the test tools (browser driver, notebooks...) come with `make test`.
# One resolver run; no byte-compiling of every installed file up front (Python compiles what it imports).
$(RUN_STAMP): $(PY) pyproject.toml setup.py
	$(PY) -m pip install --quiet --disable-pip-version-check --no-compile torch==2.13.0 -e ".[postgres,ray]"
	touch $(RUN_STAMP)

# Everything in one pip run too (a second run on top of the product's would resolve it all again).
$(STAMP): $(PY) pyproject.toml setup.py
	$(PY) -m pip install --quiet --disable-pip-version-check --no-compile torch==2.13.0 -e ".[dev,postgres,ray]"
	touch $(RUN_STAMP) $(STAMP)

venv: $(STAMP)

# The API and the dashboard answer first; the default policies train in the background.
run: $(RUN_STAMP)
	$(PY) -m decisionlab.apps.run

# Everything but the long checks (-m slow): unit, API, PostgreSQL, schemathesis and browser tests.
# PostgreSQL and Chromium come from Debian's packages (.ci/run installs them); tests that need one
# skip with the reason where it is missing.
test: $(STAMP)
	$(PY) -m ruff check .
	$(VENV)/bin/lint-imports --no-cache
	$(PY) -m pytest -q -n 2 --dist loadfile --no-loadscope-reorder -m "not slow and not readme"

# Only the browser tests: every setting of every domain at the pages' own quick sizes, screenshots to
# docs/screenshots/ (make test opens each domain's default setting on shorter runs and keeps its shots out of docs/).
e2e: $(STAMP)
	DECISIONLAB_E2E_FULL=1 $(PY) -m pytest -q -m e2e tests/e2e

# The README's quick figures, rerun by their own commands and compared (a few minutes).
figures: $(STAMP)
	$(PY) -m pytest -q -m readme tests/test_readme_figures.py

lint: $(STAMP)
	$(PY) -m ruff check .
	$(VENV)/bin/lint-imports --no-cache

bench: $(STAMP)
	$(PY) -m benchmarks.inventory_throughput
	$(PY) -m benchmarks.inventory_hdpo_grid

clean:
	rm -rf $(VENV) .pytest_cache
