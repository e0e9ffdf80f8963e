# `make demo`: a real bespoke fit of a small molecule; `make test`: the test suite.
# Both first set up .venv (Python 3.12) with everything the project needs.

PYTHON ?= $(shell for p in python3.12 $$HOME/.pyenv/versions/3.12*/bin/python3.12 /usr/local/bin/python3.12 /usr/bin/python3.12; do \
	$$p -c 'import sys; assert sys.version_info[:2] == (3, 12)' 2>/dev/null && echo $$p && break; done)
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
# AmberTools' sqm and antechamber live in the venv's bin/: openff-toolkit finds them on PATH.
export PATH := $(BIN):$(PATH)
export OMP_NUM_THREADS ?= 1

DEMO_SMILES ?= CC(=O)Nc1ccc(O)cc1
PYTEST_ARGS ?=

.PHONY: setup psi4 test demo clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@test -n "$(PYTHON)" || { echo "Python 3.12 is required (python3.12 not found)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[test]"
	touch $@

# psi4 comes from Debian (it is not on PyPI); installed when we are root, else the psi4 tests skip.
psi4:
	@command -v psi4 >/dev/null || { [ "$$(id -u)" = 0 ] && \
		apt-get update -qq && apt-get install -y -qq --no-install-recommends psi4 >/dev/null; } || \
		echo "psi4 not installed: its tests will be skipped"

test: setup psi4
	$(BIN)/pytest $(PYTEST_ARGS)

demo: setup
	mkdir -p demo-output
	$(BIN)/bespoke-dask executor run --smiles "$(DEMO_SMILES)" --qc-spec xtb gfn2xtb none \
		--n-qc-compute-workers 2 \
		--output demo-output/result.json --output-force-field demo-output/bespoke.offxml

clean:
	rm -rf $(VENV) demo-output
