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

# ---- Deployment (docs/deployment.md). These need root, podman/SLURM (installed with
# apt-get when missing) and are not part of `make test`.
.PHONY: container-image container-test slurm-test

# Base image (debootstrap, when missing), wheelhouse, podman build: localhost/daninet.
container-image: $(STAMP)
	bash containers/build.sh

# Builds the image, then runs it: --version, demo data, participant level, derivatives.
container-test: container-image
	bash containers/test.sh localhost/daninet:latest

# A real one-node SLURM cluster: the participant array recipe, its rerun of failures,
# Nipype's SLURM and SLURMGraph plugins, the app with --plugin SLURMGraph.
slurm-test: $(STAMP)
	DANINET_DEPLOYMENT_TESTS=1 $(BIN)/python -m pytest tests/deployment -p no:xdist \
	  -p no:cacheprovider -m deployment -rA --durations=0
