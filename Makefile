# Two entry points (see README): `make run` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint coverage docs docs-serve duplicates wheel-check bench clean system

# Debian packages some tests use: ngspice (SPICE verification) and the Fashion-MNIST files. Installed with
# apt-get when missing, its output shown; a failed install stops `make test` with what to do instead.
# SYSTEM=skip goes on without them (their tests then skip and say why).
SYSTEM ?= install
system:
	@if command -v ngspice >/dev/null && [ -d /usr/share/datasets/fashion-mnist ]; then \
	  echo "system: ngspice and dataset-fashion-mnist are installed"; \
	elif [ "$(SYSTEM)" = skip ]; then \
	  echo "system: SYSTEM=skip: ngspice or dataset-fashion-mnist missing; their tests will skip"; \
	else \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  echo "system: apt-get install ngspice dataset-fashion-mnist (for the SPICE and Fashion-MNIST tests)"; \
	  $$SUDO apt-get update -q && $$SUDO apt-get install -y -q ngspice dataset-fashion-mnist || { \
	    echo "system: error: apt-get could not install ngspice dataset-fashion-mnist (output above);" \
	         "install them yourself, or run 'make test SYSTEM=skip' to let their tests skip" >&2; exit 1; }; \
	fi

# The library alone (what `make run` needs), then the dev and docs tools (what `make test` needs); each at the
# versions of constraints.txt. torch comes first from the constraints: its CPU wheel where one is offered.
PIP := $(BIN)/pip install --quiet -c constraints.txt
$(VENV)/bin/python:
	@echo "venv: creating $(VENV) with $(PYTHON)"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): pyproject.toml constraints.txt | $(VENV)/bin/python
	@echo "install: torch, then kirchhoffnet (editable) into $(VENV), versions from constraints.txt"
	$(PIP) torch
	$(PIP) -e .
	touch $(STAMP)

$(STAMP)-dev: $(STAMP)
	@echo "install: the dev and docs extras (tests, lint, types, the docs site)"
	$(PIP) -e ".[dev,docs]"
	touch $(STAMP)-dev

# The main job: train a twomoon flow with plots; a second call resumes or re-finishes the same run.
run: $(STAMP)
	$(BIN)/kirchhoffnet train configs/flow2d/twomoon.yaml --out runs/twomoon $$([ -f runs/twomoon/checkpoint.pt ] && echo --resume)

# The quality gates, in order of cost: lint, types and import layers, the tests with coverage, the docs site, repeats.
test: $(STAMP)-dev system lint coverage docs duplicates

lint: $(STAMP)-dev
	$(BIN)/ruff check src tests benchmarks examples experiments docs/hooks
	$(BIN)/ruff format --check src tests benchmarks examples experiments docs/hooks
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache  # the layering contract in pyproject.toml ([tool.importlinter])

# The library's coverage (the CLI glue is omitted, see [tool.coverage] in pyproject.toml).
coverage: $(STAMP)-dev
	$(BIN)/python -m pytest -q --cov=kirchhoffnet --cov-report=term:skip-covered

docs: $(STAMP)-dev
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict  # not --quiet: it drops the warnings strict counts
	@echo "docs: built site/index.html"

docs-serve: $(STAMP)-dev
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs serve

# Repeated blocks of six or more lines in src/ (the library's `duplicates` tool, where installed).
# A block repeated to the letter fails the gate. Rows marked `shape` (the same layout with other names:
# pydantic field lists, the keyword signatures of sibling functions) are printed for review and pass;
# DUPLICATES_STRICT=1 fails on those too.
DUPLICATES_STRICT ?= 0
duplicates:
	@if command -v duplicates >/dev/null; then \
	  out=$$(cd src && duplicates --seconds 180 --most 200); echo "$$out"; \
	  if echo "$$out" | grep -q "^incomplete"; then echo "duplicates: the check did not finish"; exit 1; fi; \
	  rows=$$(echo "$$out" | grep -E "^D[0-9]+ "); \
	  [ "$(DUPLICATES_STRICT)" = 1 ] || rows=$$(echo "$$rows" | grep -v " shape"); \
	  if [ -n "$$rows" ]; then echo "duplicates: blocks repeated in src/:"; echo "$$rows"; exit 1; fi; \
	else echo "duplicates: tool not installed here, skipped"; fi

# Build the wheel and install it, with its dependencies, into a fresh venv; the console script must run.
wheel-check:
	rm -rf build/wheel-check && mkdir -p build/wheel-check
	$(PYTHON) -m venv build/wheel-check/venv
	build/wheel-check/venv/bin/pip install --quiet --upgrade pip build
	build/wheel-check/venv/bin/python -m build --wheel --outdir build/wheel-check/dist .
	build/wheel-check/venv/bin/pip install --quiet -c constraints.txt torch
	build/wheel-check/venv/bin/pip install --quiet -c constraints.txt build/wheel-check/dist/kirchhoffnet-*.whl
	cd build/wheel-check && venv/bin/kirchhoffnet --version && venv/bin/kirchhoffnet --help >/dev/null
	cd build/wheel-check && venv/bin/python -c "import importlib.resources as r; assert r.files('kirchhoffnet').joinpath('py.typed').is_file(), 'py.typed missing from the wheel'"
	cd build/wheel-check && venv/bin/python -c "import kirchhoffnet as kn, torch; v, _ = kn.simulate(kn.Circuit(kn.topology.fully_connect(3, (1, 1)), 'ShiftTanh2'), torch.zeros(1, 2)); print('wheel ok', kn.__version__, tuple(v.shape))"

# The benchmarks, with the bench extra: the JAX/diffrax peer they measure kirchhoffnet against.
bench: $(STAMP)
	$(PIP) -e ".[bench]"
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) runs .pytest_cache site build dist .coverage
