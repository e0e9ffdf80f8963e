"""The optimize stage: fit the bespoke torsion k's of one molecule to its finished scans.

Backends share one signature, `fit(force_field, parameters, targets, settings, target, prior_width)
-> list[BespokeTorsion]`: `lsq` (built-in least squares, lsq.py) and `forcebalance`
(forcebalance.py). Whatever the backend, the result's metrics use one protocol
(`PROFILE_PROTOCOL`, profiles.py), so the two are comparable.

Chemistry is imported inside the functions, so that the graph layer imports `optimize` cheaply.
"""

import time

from bespoke_dask.schema import BespokeTorsion, BespokeWorkflow, FitResult, FitTarget

NOTHING_TO_FIT = "nothing to fit: no bond matches the target torsion SMARTS"
NO_SCANS = "nothing to fit: no torsion scan finished"


def optimize(workflow: BespokeWorkflow, parameters: list[BespokeTorsion], targets: list[FitTarget]) -> FitResult:
    """Fit `parameters` to `targets` with the workflow's optimizer; the refit force field and its metrics.

    The initial force field is the workflow's base plus `parameters` at their starting k's. That
    is not the base force field: a bespoke SMIRKS covering several of the base's torsion types
    gives them all one set of k's (for an amide it loses the base's cis/trans terms), so the
    result reports the base (`base`, e.g. plain Sage: the number to beat), the initial and the
    final errors. `wall_time` (s) is the fit alone: not the backend's import, the molecules'
    one-time AM1-BCC charges, nor the metrics.
    """
    optimizer = workflow.optimizer
    if not parameters or not targets:
        return FitResult(
            optimizer=optimizer.type,
            parameters=[],
            force_field=_offxml_text(workflow.initial_force_field),
            message=NOTHING_TO_FIT if not parameters else NO_SCANS,
        )
    _check_targets(parameters, targets)
    from bespoke_dask.stages.smirks import build_force_field

    from bespoke_dask.stages.optimize.profiles import charged_molecule, pooled_error, torsion_metrics

    initial = build_force_field(workflow.initial_force_field, parameters)
    fit = _fitter(optimizer.type)
    for target in targets:  # one-time AM1-BCC charges, cached: not part of the fit's time
        charged_molecule(target.scan.mapped_smiles)
    start = time.perf_counter()
    fitted = fit(initial, parameters, targets, optimizer, workflow.target, workflow.prior_width)
    wall_time = time.perf_counter() - start
    final = _without_cosmetic_attributes(build_force_field(workflow.initial_force_field, fitted))
    cutoff = workflow.target.energy_cutoff
    metrics, initial_error, final_error = torsion_metrics(initial, final, targets, energy_cutoff=cutoff)
    return FitResult(
        optimizer=optimizer.type,
        parameters=fitted,
        force_field=final,
        metrics=metrics,
        base=pooled_error(workflow.initial_force_field, targets, energy_cutoff=cutoff),
        initial=initial_error,
        final=final_error,
        wall_time=wall_time,
    )


def _fitter(optimizer_type: str):
    """The fit function of a backend (imported on use: ForceBalance is heavy and patches globals)."""
    if optimizer_type == "lsq":
        from bespoke_dask.stages.optimize.lsq import fit_lsq

        return fit_lsq
    if optimizer_type == "forcebalance":
        from bespoke_dask.stages.optimize.forcebalance import fit_forcebalance

        return fit_forcebalance
    raise ValueError(f"unknown optimizer {optimizer_type!r}")


def _check_targets(parameters: list[BespokeTorsion], targets: list[FitTarget]) -> None:
    known = {parameter.smirks for parameter in parameters}
    for target in targets:
        if target.smirks not in known:
            raise ValueError(f"target SMIRKS {target.smirks} is not among the parameters to fit")


def _offxml_text(force_field: str) -> str:
    """OFFXML text as given, or the text of an installed force field named `force_field`."""
    if force_field.lstrip().startswith("<"):
        return force_field
    from bespoke_dask.stages.molecule import load_force_field

    return load_force_field(force_field).to_string()


def _without_cosmetic_attributes(offxml: str) -> str:
    from bespoke_dask.stages.molecule import load_force_field

    return load_force_field(offxml, allow_cosmetic_attributes=True).to_string(discard_cosmetic_attributes=True)
