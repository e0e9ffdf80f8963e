"""The optimize stage: fit the bespoke torsion k's of one molecule to its finished scans.

Backends share one signature, `fit(force_field, parameters, targets, settings, target, prior_width)
-> list[BespokeTorsion]`: `lsq` (built-in least squares, lsq.py) and `forcebalance`
(forcebalance.py). Whatever the backend, the result's metrics use one protocol
(`PROFILE_PROTOCOL`, metrics.py), so the two are comparable.

Chemistry is imported inside the functions, so that the graph layer imports `optimize` cheaply.
"""

import time

from bespoke_dask.schema import BespokeTorsion, BespokeWorkflow, FitResult, FitTarget
from bespoke_dask.stages.provenance import versions

NOTHING_TO_FIT = "nothing to fit: no bond matches the target torsion SMARTS"
NO_SCANS = "nothing to fit: no torsion scan finished"
WORSE_TOLERANCE = 1e-3  # kcal/mol; a fit this much worse than the base on its own scan keeps the base


def optimize(workflow: BespokeWorkflow, parameters: list[BespokeTorsion], targets: list[FitTarget]) -> FitResult:
    """Fit `parameters` to `targets` with the workflow's optimizer; the refit force field and its metrics.

    The initial force field is the base plus `parameters` at their starting values, which are the
    base's own terms, so it types every molecule as the base does. A scan on which the fit comes
    out worse than the base keeps the base terms for its bond's parameters (`FitResult.kept_base`).
    The refit force field is checked on the parent: every target torsion must carry its bespoke
    parameter. `wall_time` (s) is the fit alone: not the backend's import, the molecules'
    AM1-BCC charges (each target's own when given), nor the metrics.
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
    from bespoke_dask.stages import charges
    from bespoke_dask.stages.force_field import build_force_field

    initial = build_force_field(workflow.initial_force_field, parameters)
    fit = _fitter(optimizer.type)
    for target in targets:  # AM1-BCC charges computed ahead, or here once: not part of the fit's time
        if target.charges is not None:
            charges.remember(target.charges)
        charges.am1bcc_charges(target.scan.mapped_smiles)
    start = time.perf_counter()
    fitted = fit(initial, parameters, targets, optimizer, workflow.target, workflow.prior_width)
    wall_time = time.perf_counter() - start
    fitted, final, metrics, errors, kept = _no_worse_than_base(workflow, parameters, fitted, targets, initial)
    _check_parent(workflow, fitted, targets, final)
    return FitResult(
        optimizer=optimizer.type,
        parameters=fitted,
        initial_parameters=parameters,
        kept_base=kept,
        force_field=final,
        metrics=metrics,
        base=errors["base"],
        initial=errors["initial"],
        final=errors["final"],
        wall_time=wall_time,
        message=f"{len(kept)} of {len(parameters)} parameters kept the base terms (worse fit)" if kept else None,
        provenance=versions(),
    )


def _no_worse_than_base(workflow, parameters, fitted, targets, initial: str):
    """Hold at their starting (base) terms the parameters of every scan the fit made worse than the base.

    Repeats until no scan is worse (a held parameter can change another scan of the same molecule).
    Returns the parameters, their force field (OFFXML), the metrics and pooled errors of the last
    round, and the held SMIRKS.
    """
    from bespoke_dask.stages.force_field import build_force_field
    from bespoke_dask.stages.optimize.metrics import torsion_metrics

    starting = {parameter.smirks: parameter for parameter in parameters}
    base = _offxml_text(workflow.initial_force_field)
    cutoff = workflow.target.energy_cutoff
    references = {"base": base, "initial": initial}
    reference_metrics, reference_errors = torsion_metrics(references, targets, energy_cutoff=cutoff)
    kept: list[str] = []
    while True:
        final = build_force_field(base, fitted)
        final_metrics, final_errors = torsion_metrics({"final": final}, targets, energy_cutoff=cutoff)
        metrics = [
            reference.model_copy(update={"final": mine.final, "final_energies": mine.final_energies})
            for reference, mine in zip(reference_metrics, final_metrics)
        ]
        worse = {
            smirks
            for metric in metrics
            if metric.final.rmse > metric.base.rmse + WORSE_TOLERANCE
            for smirks in metric.smirks
            if smirks not in kept
        }
        if not worse:
            return fitted, final, metrics, reference_errors | final_errors, kept
        kept += sorted(worse)
        fitted = [starting[p.smirks] if p.smirks in worse else p for p in fitted]


def _check_parent(workflow: BespokeWorkflow, fitted: list[BespokeTorsion], targets: list[FitTarget], final: str) -> None:
    """The refit force field on the parent and on every scanned molecule: each target torsion
    carries its bespoke parameter (`BespokeSmirksError` naming the bond otherwise)."""
    from bespoke_dask.stages.fragment import parent_molecule
    from bespoke_dask.stages.molecule import load_force_field
    from bespoke_dask.stages.targets import check_fragment_labels, check_labels

    final = load_force_field(final)
    check_labels(final, parent_molecule(workflow.smiles), fitted)
    made_for = {parameter.smirks for parameter in fitted if parameter.parent_torsions}  # not hand-made
    for target in targets:
        if not set(target.smirks) <= made_for:
            continue
        bond = tuple(target.scan.dihedral[1:3])
        check_fragment_labels(final, parent_molecule(target.scan.mapped_smiles), bond, set(target.smirks))


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
        unknown = set(target.smirks) - known
        if unknown:
            raise ValueError(f"target SMIRKS {sorted(unknown)} are not among the parameters to fit")


def _offxml_text(force_field: str) -> str:
    """OFFXML text as given, or the text of an installed force field named `force_field`."""
    if force_field.lstrip().startswith("<"):
        return force_field
    from bespoke_dask.stages.molecule import load_force_field

    return load_force_field(force_field).to_string()
