# packshot: two commands after cloning, `make demo` and `make test`.
# Both create .venv at the repo root when it is missing and install packshot into it.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.packshot-installed
# The CPU build of torch lies on this kind of machine's disk; on a GPU machine PyPI's
# default build of the same version is the CUDA one. Installed first so that the
# `torch>=2.4` requirement below is already met and pip never pulls a multi-GB build.
TORCH := torch==2.13.0
# Only for its copy of the real CLIP BPE vocabulary (the offline tiny tokenizer).
# --no-deps: its own requirements (torchvision, timm) would replace torch.
OPEN_CLIP := open_clip_torch==3.3.0
LINTED := src tests $(wildcard benchmarks)
# The suite runs in two processes (pytest-xdist): most tests run tiny models on one thread or
# wait on a server, a worker or Ray, so two keep both cores busy (360 s -> 206 s here, with the collector refreezes of tests/conftest.py). The
# tests on the session's local Ray stay in one of them (tests/conftest.py). TEST_WORKERS=0:
# one process.
TEST_WORKERS ?= 2

.PHONY: demo test lint format clean

$(STAMP): pyproject.toml Makefile
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install --quiet "$(TORCH)"
	$(PY) -m pip install --quiet --no-deps "$(OPEN_CLIP)"
	$(PY) -m pip install --quiet -e ".[dev]"
	@touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/packshot demo

test: $(STAMP)
	$(VENV)/bin/ruff check $(LINTED)
	$(VENV)/bin/ruff format --check $(LINTED)
	$(VENV)/bin/pytest -q -n $(TEST_WORKERS) --dist loadgroup

lint: $(STAMP)
	$(VENV)/bin/ruff check $(LINTED)

format: $(STAMP)
	$(VENV)/bin/ruff format $(LINTED)
	$(VENV)/bin/ruff check --fix $(LINTED)

clean:
	rm -rf $(VENV) demo-out .pytest_cache .ruff_cache
