"""Out-of-sample QC points: a scan's relaxed profile at the angles halfway between its grid points.

A whole-parent scan at the fit's settings repeats the fit's own scan whenever the fragment is the
whole molecule (same molecule, spacing and start: torsiondrive finds the same minima). The
angles halfway between grid points (7.5, 22.5, ... degrees for a 15 degree scan) are never in a
fit's data: each gets one constrained optimization, started from the grid point below it, at the
scan's own QC level. Results are kept in the executor's store (kind "midpoint"), keyed by job.
"""

from distributed import Client, LocalCluster

from bespoke_dask.schema import ConstrainedOptimization, GridPoint, OptimizationResult, TorsionScanResult
from bespoke_dask.stages.qc import optimize_constrained
from bespoke_dask.store import Store

KIND = "midpoint"


def midpoint_jobs(scan: TorsionScanResult, settings) -> list[ConstrainedOptimization]:
    """One job per gap between neighbouring grid points (around the circle for a full scan)."""
    points = sorted(scan.grid, key=lambda point: point.angle)
    spacing = scan.task.grid_spacing
    full = scan.task.scan_range is None
    jobs = []
    for point in points if full else points[:-1]:
        angle = point.angle + spacing / 2
        jobs.append(ConstrainedOptimization(
            mapped_smiles=scan.mapped_smiles, geometry=point.geometry, dihedral=scan.dihedral,
            angle=angle - 360 if angle > 180 else angle, qc_spec=scan.task.qc_spec, optimization=settings,
        ))
    return jobs


def midpoint_scans(scans: list[TorsionScanResult], settings, store: Store, workers: int = 2) -> list[TorsionScanResult]:
    """Each scan's midpoint profile (stored optimizations reused, the others run on `workers`)."""
    jobs = [midpoint_jobs(scan, settings) for scan in scans]
    missing = {job.content_hash(): job for batch in jobs for job in batch
               if store.get(KIND, job.content_hash(), OptimizationResult) is None}
    if missing:
        print(f"{len(missing)} midpoint optimizations to run", flush=True)
        with LocalCluster(n_workers=workers, threads_per_worker=1, host="127.0.0.1", dashboard_address=None) as cluster:
            with Client(cluster) as client:
                futures = client.map(optimize_constrained, list(missing.values()), pure=False)
                for key, future in zip(missing, futures):
                    try:
                        store.put(KIND, key, future.result())
                    except Exception as error:  # a point the engine cannot do is left out, and said so
                        print(f"midpoint optimization failed: {error}", flush=True)
    return [_as_scan(scan, batch, store) for scan, batch in zip(scans, jobs)]


def _as_scan(scan: TorsionScanResult, jobs: list[ConstrainedOptimization], store: Store) -> TorsionScanResult:
    results = [store.get(KIND, job.content_hash(), OptimizationResult) for job in jobs]
    grid = [GridPoint(angle=job.angle, energy=result.energy, geometry=result.final_geometry)
            for job, result in zip(jobs, results) if result is not None]
    return scan.model_copy(update={"grid": sorted(grid, key=lambda point: point.angle), "n_optimizations": len(jobs)})
