# Two commands do everything on a fresh machine: `make demo` and `make test` (each creates .venv first).
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
TORCH   := torch==2.13.0

.PHONY: demo test lint bench bench-quick clean install

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# torch first (the local CPU build; an unpinned torch would pull a multi-GB CUDA build), then the project.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet $(TORCH)
	$(BIN)/pip install --quiet -e ".[dev,ros]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/inspatio-sim demo

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .

bench: $(STAMP)
	$(BIN)/inspatio-sim bench render
	$(BIN)/inspatio-sim bench env
	$(BIN)/inspatio-sim bench recon
	$(BIN)/inspatio-sim bench ros

bench-quick: $(STAMP)
	$(BIN)/inspatio-sim bench render --quick
	$(BIN)/inspatio-sim bench env --quick
	$(BIN)/inspatio-sim bench recon --quick
	$(BIN)/inspatio-sim bench ros --quick

clean:
	rm -rf $(VENV) out .pytest_cache
