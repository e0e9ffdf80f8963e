#!/usr/bin/env bash
# Fit bespoke torsions for paracetamol from the command line with GFN2-xTB scans.
# Run from the repository root after `make setup` (or `make demo`).
set -euo pipefail
export PATH="$PWD/.venv/bin:$PATH"   # the CLI and AmberTools' sqm

bespoke-dask executor run \
    --smiles "CC(=O)Nc1ccc(O)cc1" \
    --workflow debug \
    --n-qc-compute-workers 2 \
    --output paracetamol.json \
    --output-force-field paracetamol-bespoke.offxml
