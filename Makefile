# Two commands on a fresh machine: `make run` (install, load samples, open the dashboard) and
# `make test` (install, run the test suite). TORCH can name another build, e.g. TORCH="torch==2.13.0".
VENV  ?= .venv
PY    := $(VENV)/bin/python
PIP   := $(VENV)/bin/pip
TORCH ?= torch==2.13.0
PORT  ?= 8501

.PHONY: install install-dev install-gpu run test bench lint

$(VENV)/.installed: requirements.txt
	python3 -m venv $(VENV)
	$(PIP) install -q "$(TORCH)"
	$(PIP) install -q -r requirements.txt
	$(PY) -m core visualise warm  # UMAP's numba code compiled once (~1 min), not on the first map
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed requirements-dev.txt
	$(PIP) install -q -r requirements-dev.txt
	touch $@

install: $(VENV)/.installed

install-dev: $(VENV)/.installed-dev

# CUDA machines only: adds Unsloth (replaces torch with a CUDA build).
install-gpu: $(VENV)/.installed
	$(PIP) install -r requirements-gpu.txt

run: install
	$(PY) -m core data samples
	$(PY) -m streamlit run app.py --server.address 127.0.0.1 --server.port $(PORT)

test: install-dev
	bash scripts/ensure-chromium.sh
	$(PY) -m pytest -q

bench: install-dev
	$(PY) bench/bench_engine.py

lint: install-dev
	$(VENV)/bin/ruff check core pages tests bench app.py
