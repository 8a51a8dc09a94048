# Two entry points (see README): `make run` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint bench clean system

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
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/kirchhoffnet eval ../shared/reference/kirchhoffnet-original/twomoon --out runs/twomoon-original

test: $(STAMP) system
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) runs .pytest_cache
