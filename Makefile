# The two commands of README.md:  `make demo` (tiny end-to-end reproduction) and `make test` (the test suite).
# Both create/use the virtual environment $(VENV) and install what they need into it.

VENV ?= .venv
PYTHON ?= python3
# The CPU wheel of torch; on a GPU machine set TORCH_SPEC to the CUDA build you want (e.g. "torch==2.13.0").
TORCH_SPEC ?= torch==2.13.0
PY := $(VENV)/bin/python
SMOKE_DIR := build/notebook_smoke
# pytest-xdist workers of `make test`: one per logical CPU (tests/conftest.py: one torch thread each, a test file
# or a notebook per unit of work, the long ones first); TEST_WORKERS=0 runs the suite in this one process.
TEST_WORKERS ?= logical

.PHONY: setup demo reproduce test smoke-notebooks clean-smoke

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH_SPEC)"
	$(PY) -m pip install --quiet -e ".[notebooks,test,eval]"
	touch $@

demo: setup
	$(PY) -m mcjepa.reproduce run --profile tiny

# The full reproduction: every method and sweep point with 3 seeds, the instability setting with 5 (hours on 2
# cores; resumable, see README).
reproduce: setup
	$(PY) -m mcjepa.reproduce run --profile full

# nbval: every cell must run; cells marked `# NBVAL_CHECK_OUTPUT` must also print what is stored in the notebook
# (refresh with `python -m mcjepa.notebook_outputs`). tests/browser needs the system `chromium` (.ci/run installs it).
test: setup
	$(PY) -m ruff check mcjepa tests benchmarks
	rm -rf $(SMOKE_DIR)
	$(PY) -m mcjepa.reproduce prepare --profile smoke --out $(SMOKE_DIR)
	$(PY) -m pytest tests $(SMOKE_DIR) --nbval-lax --nbval-current-env --nbval-sanitize-with notebooks/nbval_sanitize.cfg \
		-p no:cacheprovider -n $(TEST_WORKERS) --dist loadfile --durations=12
