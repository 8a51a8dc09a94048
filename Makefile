# Two entry points (see README): `make run` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint coverage docs docs-serve duplicates wheel-check bench clean system

# Debian packages some tests use: ngspice (SPICE verification) and the Fashion-MNIST files.
# Installed when missing and when apt-get is usable; otherwise those tests skip with the reason.
system:
	@if ! command -v ngspice >/dev/null || [ ! -d /usr/share/datasets/fashion-mnist ]; then \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  ($$SUDO apt-get install -y -qq ngspice dataset-fashion-mnist >/dev/null 2>&1 || \
	   ($$SUDO apt-get update -qq >/dev/null 2>&1 && $$SUDO apt-get install -y -qq ngspice dataset-fashion-mnist >/dev/null 2>&1)) || \
	  echo "warning: could not apt-get install ngspice dataset-fashion-mnist; their tests will skip"; \
	fi

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch first and pinned: a looser requirement pulls a multi-GB CUDA build.
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e ".[dev,docs]"
	touch $(STAMP)

# The main job: train a twomoon flow with plots; a second call resumes or re-finishes the same run.
run: $(STAMP)
	$(BIN)/kirchhoffnet train configs/flow2d/twomoon.yaml --out runs/twomoon $$([ -f runs/twomoon/checkpoint.pt ] && echo --resume)

# The quality gates, in order of cost: lint, types and import layers, the tests with coverage, the docs site, repeats.
test: $(STAMP) system lint coverage docs duplicates

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks examples experiments docs/hooks
	$(BIN)/ruff format --check src tests benchmarks examples experiments docs/hooks
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache  # the layering contract in pyproject.toml ([tool.importlinter])

# The library's coverage (the CLI glue is omitted, see [tool.coverage] in pyproject.toml).
coverage: $(STAMP)
	$(BIN)/python -m pytest -q --cov=kirchhoffnet --cov-report=term:skip-covered

docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet
	@echo "docs: built site/index.html"

docs-serve: $(STAMP)
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
	build/wheel-check/venv/bin/pip install --quiet torch==2.13.0
	build/wheel-check/venv/bin/pip install --quiet build/wheel-check/dist/kirchhoffnet-*.whl
	cd build/wheel-check && venv/bin/kirchhoffnet --version && venv/bin/kirchhoffnet --help >/dev/null
	cd build/wheel-check && venv/bin/python -c "import kirchhoffnet as kn, torch; v, _ = kn.simulate(kn.Circuit(kn.topology.fully_connect(3, (1, 1)), 'ShiftTanh2'), torch.zeros(1, 2)); print('wheel ok', kn.__version__, tuple(v.shape))"

bench: $(STAMP)
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) runs .pytest_cache site build dist .coverage
