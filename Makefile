# The two commands of a fresh machine: `make demo` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.geotune-installed

.PHONY: demo test quick test-all lint install clean

$(PY):
	python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip

# torch/torchvision are pinned to the builds that lie on this machine's disk; see README.
$(STAMP): pyproject.toml | $(PY)
	$(PIP) install -q torch==2.14.1 torchvision==0.29.1
	$(PIP) install -q -e '.[dev,faiss]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/geotune demo

# CI runs everything a CPU can: the default suite plus the slow end-to-end tests (only `gpu` is left out).
test: $(STAMP)
	$(VENV)/bin/lint-imports
	$(PY) -m pytest -q -m 'not gpu'

quick: $(STAMP)
	$(PY) -m pytest -q

test-all: $(STAMP)
	$(PY) -m pytest -q -m ''

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports

clean:
	rm -rf runs .cache
