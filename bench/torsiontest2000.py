"""TorsionTest2000 DFT scans (../shared/data/torsiontest2000, MIT, Leif Jacobson) as plain torsion-scan JSON.

    python bench/torsiontest2000.py SCAN.json [...] > plain.json

Each source file is a list of 24 grid points (coordinates in angstrom, energy in hartree,
`torsion_atoms` 1-based); the output is one plain scan per file, as `bespoke-dask cache update`
reads it (bespoke_dask/stages/scan_file.py).
"""

import json
import sys
from pathlib import Path

ENERGY = "E[wB97X-D3BJ/def2-TZVPD](Ha)"
QC_SPEC = {"program": "psi4", "method": "wb97x-d3bj", "basis": "def2-tzvpd"}


def to_plain_scan(path: Path) -> dict:
    """One TorsionTest2000 file as a plain scan (0-based dihedral)."""
    points = json.loads(Path(path).read_text())
    first = points[0]
    return {
        "smiles": first["smiles"],
        "elements": first["elements"],
        "dihedral": [atom - 1 for atom in first["torsion_atoms"]],
        "qc_spec": QC_SPEC,
        "grid": [
            {"angle": point["torsion_angle"], "geometry": point["coordinates"], "energy": point[ENERGY]}
            for point in points
        ],
    }


if __name__ == "__main__":
    json.dump([to_plain_scan(Path(p)) for p in sys.argv[1:]], sys.stdout)
