# Two commands do everything on a fresh machine: `make demo` and `make test` (each creates .venv first).
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
TORCH   := torch==2.13.0

.PHONY: demo test lint bench bench-quick clean install system-deps

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# torch first (the local CPU build; an unpinned torch would pull a multi-GB CUDA build), then the project.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet $(TORCH)
	$(BIN)/pip install --quiet -e ".[dev,ros,rl,viewer,ray]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/inspatio-sim demo

# system packages a test needs: Debian's chromium + chromedriver for the browser test of the viewer. Installed when
# missing and apt-get is usable (root); otherwise that test skips and says why.
system-deps:
	@if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then \
		if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
			(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null) \
				|| echo "warning: could not install chromium; the browser test will skip"; \
		else echo "note: chromium not installed (needs root + apt-get); the browser test will skip"; fi; \
	fi

test: $(STAMP) system-deps
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

# On a machine with an NVIDIA GPU and a CUDA build of torch in the venv: the CUDA tests, then the render and env
# benches on the GPU (quick sizes; under 8 minutes). Figures land in out/gpu/.
.PHONY: gpu-check
gpu-check: $(STAMP)
	@$(BIN)/python -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 'gpu-check: torch sees no CUDA device (install a CUDA build of torch into $(VENV), e.g. pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128, and numba-cuda)')"
	timeout 180 $(BIN)/python -m pytest -q tests/render/test_cuda.py tests/render/test_fused_cuda.py
	timeout 180 $(BIN)/inspatio-sim bench render --quick --device cuda --out out/gpu
	timeout 120 $(BIN)/inspatio-sim bench env --quick --device cuda --out out/gpu

clean:
	rm -rf $(VENV) out .pytest_cache
