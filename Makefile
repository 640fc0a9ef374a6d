# The two set-up commands of the README: `make demo` and `make test` (each creates .venv on first use).
VENV ?= .venv
PYTHON ?= python3
SHARED_DATA := $(abspath ../shared/data)
# Real datasets: $SEQREC_DATA if set, else ../shared/data when it exists (real-data tests skip otherwise).
export SEQREC_DATA ?= $(if $(wildcard $(SHARED_DATA)),$(SHARED_DATA),$(abspath data))

.PHONY: install demo test bench gpu-check lint format clean

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q --upgrade pip
	$(VENV)/bin/python -m pip install -q -c constraints.txt -e '.[dev]'
	touch $@

install: $(VENV)/.installed

demo: install
	$(VENV)/bin/seqrec demo

test: install
	$(VENV)/bin/python -m pytest

# The benchmark suite (hours on a CPU): speed vs RecTools, large-catalogue memory, accuracy runs.
bench: install
	$(VENV)/bin/python benchmarks/suite.py --budget $(or $(BUDGET),900)

# Everything GPU-dependent, in minutes on one GPU (says so and exits where there is none).
gpu-check: install
	$(VENV)/bin/python benchmarks/gpu_check.py --out bench-results/gpu

lint: install
	$(VENV)/bin/ruff check src tests benchmarks

format: install
	$(VENV)/bin/ruff format src tests benchmarks

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache .ruff_cache
