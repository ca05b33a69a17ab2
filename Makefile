# The README's two commands: `make demo` and `make test`. Each creates .venv when it is
# missing and installs the package into it (torch first, pinned to the CPU wheel).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.daninet-installed
DEMO   ?= demo
JOBS   ?= 2

.PHONY: install test demo clean

install: $(STAMP)

$(STAMP): setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -n $(JOBS) --durations=15

demo: $(STAMP)
	$(BIN)/python -m daninet_pipeline.demo $(DEMO)

clean:
	rm -rf $(DEMO) .pytest_cache
