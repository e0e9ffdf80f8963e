"""What to fit when some of a molecule's torsiondrives failed.

Without `allow_partial` the molecule errors, naming every failed torsion and why; with it, the
torsions whose scans succeeded are fitted and the others are listed as skipped in the result.
"""

import asyncio

from bespoke_dask.errors import one_line
from bespoke_dask.schema import SkippedTorsion, TorsionScanResult, TorsionTarget


class TorsionsFailed(RuntimeError):
    """Torsiondrives of a molecule failed; the message lists each with its reason."""


def fitted_and_skipped(
    targets: list[TorsionTarget],
    scans: dict[str, TorsionScanResult | BaseException],
    allow_partial: bool,
) -> tuple[list[TorsionTarget], list[SkippedTorsion]]:
    """The targets to fit and the skipped ones; `scans` maps each scan's hash to its result or error."""
    for outcome in scans.values():
        if isinstance(outcome, asyncio.CancelledError):
            raise outcome
    failed = {key: outcome for key, outcome in scans.items() if isinstance(outcome, BaseException)}
    if not failed:
        return targets, []
    reasons = "; ".join(one_line(error).split(": ", 1)[-1] for error in failed.values())
    if not allow_partial or len(failed) == len(scans):
        advice = "" if allow_partial or len(failed) == len(scans) else " (allow_partial fits the others)"
        count = "every torsiondrive" if len(failed) == len(scans) else f"{len(failed)} of {len(scans)} torsiondrives"
        raise TorsionsFailed(f"{count} failed{advice}: {reasons}")
    kept = [target for target in targets if target.scan.content_hash() not in failed]
    skipped = [
        SkippedTorsion(
            smirks=[parameter.smirks for parameter in target.parameters],
            smiles=target.scan.smiles,
            error=one_line(failed[target.scan.content_hash()].__cause__ or failed[target.scan.content_hash()]),
        )
        for target in targets
        if target.scan.content_hash() in failed
    ]
    return kept, skipped
