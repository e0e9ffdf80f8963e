"""`BespokeWorkflowFactory`: workflow settings once, a workflow per molecule.

Named workflows: `default` (BespokeFit's defaults: WBO fragments, psi4 B3LYP-D3BJ/DZVP,
15 degree scans from 10 conformers; but the least-squares fit, see the README's benchmark) and
`debug` (GFN2-xTB, 30 degree scans from one conformer, Pfizer fragments: seconds to minutes).
"""

import json
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import dask.config
from pydantic import ValidationError

from bespoke_dask import config  # noqa: F401 - loads bespoke_dask.yaml's defaults

from bespoke_dask.errors import InputError, one_line
from bespoke_dask.schema import (
    BespokeWorkflow,
    LeastSquaresSettings,
    PfizerFragmentation,
    QCSpec,
    TorsionDriveSettings,
    WorkflowSettings,
)

if TYPE_CHECKING:
    from openff.toolkit import Molecule

WorkflowName = Literal["default", "debug"]


class BespokeWorkflowFactory(WorkflowSettings):
    """The settings of a bespoke fit, applied to any number of molecules."""

    @classmethod
    def from_name(cls, name: WorkflowName) -> "BespokeWorkflowFactory":
        if name == "default":
            return cls()
        if name == "debug":
            return cls(
                fragmentation=PfizerFragmentation(),
                qc_spec=QCSpec(program="xtb", method="gfn2xtb", basis=None),
                torsiondrive=TorsionDriveSettings(grid_spacing=30, n_conformers=1),
                optimizer=LeastSquaresSettings(),
            )
        raise InputError(f"unknown workflow '{name}': choose default or debug")

    @classmethod
    def from_file(cls, path: str | Path) -> "BespokeWorkflowFactory":
        """Read a factory saved with `to_file` (JSON); InputError naming the first problem."""
        try:
            text = Path(path).read_text()
        except (OSError, UnicodeDecodeError) as error:
            raise InputError(f"cannot read workflow file {path}: {one_line(error)}") from None
        return cls.from_json(text, source=str(path))

    @classmethod
    def from_json(cls, text: str, source: str = "workflow JSON") -> "BespokeWorkflowFactory":
        """Validate workflow settings given as JSON text; InputError naming the first problem."""
        try:
            return cls.model_validate_json(text)
        except ValidationError as error:
            problem = error.errors()[0]
            # A key that is no plain name (it may hold a newline) is shown quoted, as JSON writes it.
            where = ".".join(
                str(part) if isinstance(part, int) or part.isidentifier() else json.dumps(part)
                for part in problem["loc"]
            ) or "the top level"
            more = f" (and {error.error_count() - 1} more)" if error.error_count() > 1 else ""
            raise InputError(f"{source} is not a valid workflow: {where}: {problem['msg']}{more}") from None

    def to_file(self, path: str | Path) -> None:
        Path(path).write_text(self.model_dump_json(indent=2))

    def optimization_schema_from_smiles(self, smiles: str) -> BespokeWorkflow:
        """A checked workflow for one molecule; raises `InputError` on anything unfittable."""
        from bespoke_dask.stages.molecule import mapped_smiles_from_input

        return self._workflow(mapped_smiles_from_input(smiles))

    def optimization_schemas_from_file(self, path: str | Path) -> list[BespokeWorkflow]:
        """Checked workflows for every molecule of an SDF/MOL file."""
        from openff.toolkit import Molecule

        try:
            molecules = Molecule.from_file(str(path), allow_undefined_stereo=True)
        except Exception as error:
            raise InputError(f"could not read molecules from {path}: {error}") from None
        molecules = molecules if isinstance(molecules, list) else [molecules]
        return [self.optimization_schema_from_smiles(m.to_smiles(mapped=True)) for m in molecules]

    def optimization_schema_from_molecule(self, molecule: "Molecule") -> BespokeWorkflow:
        return self._workflow(molecule.to_smiles(mapped=True))

    def optimization_schemas_from_molecules(self, molecules: list["Molecule"]) -> list[BespokeWorkflow]:
        return [self.optimization_schema_from_molecule(molecule) for molecule in molecules]

    def _workflow(self, mapped_smiles: str) -> BespokeWorkflow:
        workflow = BespokeWorkflow(smiles=mapped_smiles, **dict(self))
        check_workflow(workflow)
        return workflow


def check_workflow(workflow: BespokeWorkflow) -> None:
    """Raise `InputError` if the target SMARTS are bad, the molecule is above `bespoke-dask.max-atoms`,
    or the force field or the QC engine cannot handle it.

    A cache-only workflow runs no QC, so its QC engine is not checked."""
    from openff.toolkit import Molecule

    from bespoke_dask.stages.engines import check_qc_spec
    from bespoke_dask.stages.molecule import check_force_field, check_size, check_target_torsions

    check_target_torsions(workflow.target_torsion_smirks)
    check_size(workflow.smiles, dask.config.get("bespoke-dask.max-atoms", None))
    molecule = Molecule.from_mapped_smiles(workflow.smiles, allow_undefined_stereo=True)
    symbols = {atom.symbol for atom in molecule.atoms}
    if not workflow.cache_only:
        check_qc_spec(workflow.qc_spec, symbols, molecule.total_charge.m)
    check_force_field(workflow.smiles, workflow.initial_force_field)
