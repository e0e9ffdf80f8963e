"""Session fixtures: synthetic scans of 1-propanol and phenol with known k's (synthetic_scans.py)."""

import sys
import types

import pytest
from synthetic_scans import (
    CCCO,
    CCCO_DIHEDRAL,
    CCOH,
    CCOH_DIHEDRAL,
    PHENOL,
    PHENOL_DIHEDRAL,
    PHENOL_TORSION,
    PROPANOL,
    SAGE,
    build_force_field,
    synthetic_scan,
)

from bespoke_dask.schema import FitTarget


@pytest.fixture(scope="session")
def propanol_force_field() -> str:
    """Sage with both propanol parameters at their true k's."""
    return build_force_field(SAGE, [CCCO, CCOH])


@pytest.fixture(scope="session")
def propanol_targets(propanol_force_field) -> list[FitTarget]:
    """Two scans of 1-propanol (C-C-C-O and C-C-O-H) made under the true CCCO and CCOH k's."""
    return [
        FitTarget(smirks=[CCCO.smirks], scan=synthetic_scan(PROPANOL, CCCO_DIHEDRAL, propanol_force_field)),
        FitTarget(smirks=[CCOH.smirks], scan=synthetic_scan(PROPANOL, CCOH_DIHEDRAL, propanol_force_field)),
    ]


@pytest.fixture(scope="session")
def phenol_force_field() -> str:
    return build_force_field(SAGE, [PHENOL_TORSION])


@pytest.fixture(scope="session")
def phenol_target(phenol_force_field) -> FitTarget:
    """A scan of phenol's C-O bond made under the true PHENOL_TORSION k's."""
    scan = synthetic_scan(PHENOL, PHENOL_DIHEDRAL, phenol_force_field)
    return FitTarget(smirks=[PHENOL_TORSION.smirks], scan=scan)


@pytest.fixture
def smirks_module(monkeypatch):
    """bespoke_dask.stages.smirks, or the stand-in `build_force_field` until that module exists."""
    try:
        from bespoke_dask.stages import smirks
    except ImportError:
        smirks = types.ModuleType("bespoke_dask.stages.smirks")
        smirks.build_force_field = build_force_field
        monkeypatch.setitem(sys.modules, "bespoke_dask.stages.smirks", smirks)
    return smirks
