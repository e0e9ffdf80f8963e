"""Fit-quality benchmark: plain Sage 2.2 against the bespoke force field, in and out of sample.

Two parts (each prints its tables and writes bench/results/accuracy-<part>.json):

`dft`: the 100 public TorsionTest2000 scans (../shared/data/torsiontest2000, wB97X-D3BJ/def2-TZVPD),
    converted to plain scan JSON (bench/torsiontest2000.py), seeded with `bespoke-dask cache update`
    and fitted with `--cache-only` workflows (no fragmentation, the scanned bond as the only target)
    on one executor: zero QC. Scored on their own DFT energies (in sample; there is no second scan
    of these molecules).

`molecules`: drug-like molecules fitted as a user would (default workflow with GFN2-xTB: WBO
    fragments, 15 degree scans), scored in sample on the fragment scans the fit used and OUT OF
    SAMPLE on QC points the fit never sees: the benchmark scans every target bond of the whole
    parent (no fragmentation; 2 starting conformers, which for these molecules yield the same
    scan as 1) and then optimizes the parent at the 24 angles halfway between its grid points
    (7.5, 22.5, ... degrees; bench/midpoints.py). Where the fragment is the whole molecule, the
    parent's grid points are the fit's own data; the midpoints never are.

"Sage" is always plain openff_unconstrained-2.2.0 (FitResult.base / the metrics' base profile),
never Sage with the bespoke SMIRKS at their starting values. Errors: per scan, RMSE (kcal/mol) of
torsion-restrained relaxed MM profiles against QC, aligned at the QC minimum, over the points
within 10 kcal/mol of it (`FitResult.protocol`). Per class and overall: median, mean and max RMSE,
max error, and fit time per molecule.

    PATH=$PWD/.venv/bin:$PATH python bench/accuracy.py dft [--limit N]
    PATH=$PWD/.venv/bin:$PATH python bench/accuracy.py molecules [--prior-width W]
    PATH=$PWD/.venv/bin:$PATH python bench/accuracy.py summary bench/results/accuracy-molecules.json
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "error")  # before dask is imported; workers inherit it

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
RESULTS = BENCH / "results"
TT2000 = ROOT.parent / "shared" / "data" / "torsiontest2000"
sys.path.insert(0, str(BENCH))

PARENT_CONFORMERS = 2  # the parent scans start from 2 conformers (RDKit prunes these to 1), the fit's from 1

# (name, class, SMILES): every target bond is scored
MOLECULES = [
    ("paracetamol", "anilide", "CC(=O)Nc1ccc(O)cc1"),
    ("N-(pyridin-4-yl)acetamide", "anilide", "CC(=O)Nc1ccncc1"),
    ("N-methylbenzamide", "amide", "CNC(=O)c1ccccc1"),
    ("N-phenylmethanesulfonamide", "sulfonamide", "CS(=O)(=O)Nc1ccccc1"),
    ("N-methylbenzenesulfonamide", "sulfonamide", "CNS(=O)(=O)c1ccccc1"),
    ("phenetole", "ether", "CCOc1ccccc1"),
    ("2-phenylethanol", "benzylic", "OCCc1ccccc1"),
    ("2-phenylpyridine", "biaryl", "c1ccc(-c2ccccn2)cc1"),
    ("2-methylbiphenyl", "biaryl", "Cc1ccccc1-c1ccccc1"),
    ("phenylacetate", "charged", "[O-]C(=O)Cc1ccccc1"),
    ("N-[2-(4-methoxyphenyl)ethyl]acetamide", "5 rotatable bonds", "COc1ccc(CCNC(C)=O)cc1"),
    ("4-acetamido-N-methylbenzenesulfonamide", "fragmented", "CC(=O)Nc1ccc(cc1)S(=O)(=O)NC"),
]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("part", choices=["dft", "molecules", "summary"])
    parser.add_argument("results", nargs="?", type=Path, help="summary: re-print this results JSON")
    parser.add_argument("--limit", type=int, help="only the first N scans or molecules")
    parser.add_argument("--directory", type=Path, help="executor directory (its store is reused)")
    parser.add_argument("--optimizer-workers", type=int, default=2)
    parser.add_argument("--qc-workers", type=int, default=2)
    parser.add_argument("--prior-width", type=float, help="kcal/mol (default: the workflow's); results get a suffix")
    args = parser.parse_args(argv)
    if args.part == "summary":
        report = json.loads(args.results.read_text())
        print_summary(report | {"summary": summarise(report["scans"])})
        return
    args.directory = args.directory or RESULTS / f"executor-{args.part}"
    start = time.perf_counter()
    rows = dft(args) if args.part == "dft" else molecules(args)
    report = {"part": args.part, "commit": _commit(), "run_seconds": time.perf_counter() - start,
              "prior_width": args.prior_width, "summary": summarise(rows), "scans": rows}
    RESULTS.mkdir(exist_ok=True)
    suffix = f"-prior-{args.prior_width:g}" if args.prior_width else ""
    (RESULTS / f"accuracy-{args.part}{suffix}.json").write_text(json.dumps(report, indent=1))
    print_summary(report)


# ---------------------------------------------------------------- dft


def dft(args) -> list[dict]:
    """Seed every TorsionTest2000 scan, fit each with a cache-only workflow, score on its DFT energies."""
    from torsiontest2000 import QC_SPEC, to_plain_scan

    from bespoke_dask import BespokeDaskExecutor, BespokeWorkflowFactory
    from bespoke_dask.schema import LeastSquaresSettings, NoFragmentation, QCSpec
    from bespoke_dask.stages.scan_file import PlainTorsionScan, bond_smarts, scan_result_from_plain

    files = sorted(TT2000.glob("testcase-*.json"))[: args.limit]
    factory = BespokeWorkflowFactory(
        fragmentation=NoFragmentation(), qc_spec=QCSpec(**QC_SPEC), optimizer=LeastSquaresSettings(), cache_only=True,
        **_prior(args),
    )
    plain = args.directory / "plain-scans.json"
    args.directory.mkdir(parents=True, exist_ok=True)
    plain.write_text(json.dumps([to_plain_scan(path) for path in files]))
    settings = args.directory / "workflow.json"
    factory.to_file(settings)
    subprocess.run(["bespoke-dask", "cache", "update", "--file", str(plain), "--directory", str(args.directory),
                    "--workflow-file", str(settings)], check=True)
    scans = [scan_result_from_plain(PlainTorsionScan.model_validate(s), factory) for s in json.loads(plain.read_text())]
    with BespokeDaskExecutor(n_fragmenter_workers=1, n_qc_compute_workers=0, n_optimizer_workers=args.optimizer_workers,
                             directory=args.directory) as executor:
        ids = {}
        for path, scan in zip(files, scans):
            workflow = factory.model_copy(update={"target_torsion_smirks": [bond_smarts(scan)]})
            ids[path.stem] = executor.submit(workflow.optimization_schema_from_smiles(scan.mapped_smiles))
        outputs = wait_all(executor, ids)
    return [scan_row(name, "dft", output) for name, output in outputs.items()]


# ---------------------------------------------------------------- molecules


def molecules(args) -> list[dict]:
    """Fit each molecule (WBO fragments) and score in sample and on whole-parent scans."""
    from bespoke_dask import BespokeDaskExecutor, BespokeWorkflowFactory
    from bespoke_dask.schema import (
        FitTarget,
        LeastSquaresSettings,
        NoFragmentation,
        QCSpec,
        TorsionDriveSettings,
        WBOFragmentation,
    )
    from bespoke_dask.stages.optimize.metrics import torsion_metrics
    from bespoke_dask.store import Store
    from midpoints import midpoint_scans

    xtb = QCSpec(program="xtb", method="gfn2xtb", basis=None)
    fit = BespokeWorkflowFactory(fragmentation=WBOFragmentation(), qc_spec=xtb, optimizer=LeastSquaresSettings(),
                                 torsiondrive=TorsionDriveSettings(grid_spacing=15, n_conformers=1), **_prior(args))
    parent = fit.model_copy(update={"fragmentation": NoFragmentation(),
                                    "torsiondrive": TorsionDriveSettings(grid_spacing=15, n_conformers=PARENT_CONFORMERS)})
    chosen = MOLECULES[: args.limit]
    with BespokeDaskExecutor(n_fragmenter_workers=1, n_qc_compute_workers=args.qc_workers,
                             n_optimizer_workers=args.optimizer_workers, directory=args.directory) as executor:
        ids = {}
        for name, _, smiles in chosen:
            ids[(name, "fit")] = executor.submit(fit.optimization_schema_from_smiles(smiles))
            ids[(name, "parent")] = executor.submit(parent.optimization_schema_from_smiles(smiles))
        outputs = wait_all(executor, ids)
    stored = _stored_scans(args.directory)
    parent_scans = {name: [stored[(m.mapped_smiles, tuple(m.dihedral), PARENT_CONFORMERS)]
                           for m in outputs[(name, "parent")].results.metrics]
                    for name, _, _ in chosen if _has_metrics(outputs[(name, "parent")])}
    every_scan = [scan for scans in parent_scans.values() for scan in scans]
    midpoints = dict(zip(map(id, every_scan), midpoint_scans(every_scan, fit.optimization, Store(args.directory / "store"), args.qc_workers)))
    rows = []
    for name, kind, _ in chosen:
        fitted = outputs[(name, "fit")]
        rows.append(scan_row(name, f"{kind} (in sample)", fitted))
        if not _has_metrics(fitted) or name not in parent_scans:
            rows.append({"name": name, "class": f"{kind} (out of sample)",
                         "error": fitted.error or outputs[(name, "parent")].error})
            continue
        # the parent's midpoint profiles, scored with plain Sage and the force field fitted on fragments
        targets = [FitTarget(smirks=[], scan=midpoints[id(scan)]) for scan in parent_scans[name]]
        metrics, _ = torsion_metrics({"base": fit.initial_force_field, "final": fitted.results.force_field}, targets)
        rows.append(_out_of_sample_row(name, kind, fitted, metrics))
    return rows


def _has_metrics(output) -> bool:
    return output.results is not None and bool(output.results.metrics)


def _stored_scans(directory: Path) -> dict:
    """{(mapped SMILES, dihedral, conformers): scan} of every finished scan in an executor's store.

    The conformer count tells a parent's own scan from the fit's scan of a fragment that is the
    whole molecule (same SMILES and dihedral)."""
    from bespoke_dask.schema import TorsionScanResult
    from bespoke_dask.store import Store

    store = Store(directory / "store")
    scans = (store.get("scan", key, TorsionScanResult) for key in store.keys("scan"))
    return {(scan.mapped_smiles, tuple(scan.dihedral), scan.task.n_conformers): scan for scan in scans if scan is not None}


def _out_of_sample_row(name, kind, fitted, metrics) -> dict:
    return {"name": name, "class": f"{kind} (out of sample)",
            "scans": [{"base": m.base.rmse, "final": m.final.rmse, "base_max": m.base.max_error,
                       "final_max": m.final.max_error} for m in metrics],
            "fit_seconds": fitted.results.wall_time}


# ---------------------------------------------------------------- common


def _prior(args) -> dict:
    return {"prior_width": args.prior_width} if args.prior_width else {}


def wait_all(executor, ids: dict) -> dict:
    pending, outputs, start = dict(ids), {}, time.monotonic()
    while pending:
        for key, workflow_id in list(pending.items()):
            output = executor.retrieve(workflow_id)
            if output.status in ("success", "errored", "cancelled"):
                outputs[key] = output
                del pending[key]
                print(f"[{time.monotonic() - start:6.0f} s] {key}: {output.status} {output.error or ''}", flush=True)
        time.sleep(2 if pending else 0)
    return {key: outputs[key] for key in ids}


def scan_row(name: str, kind: str, output) -> dict:
    """Per-scan base (plain Sage) and bespoke errors of one fitted workflow."""
    results = output.results
    if results is None or not results.metrics:
        return {"name": name, "class": kind, "error": output.error or (results.message if results else None)}
    return {
        "name": name,
        "class": kind,
        "smiles": output.smiles,
        "kept_base": results.kept_base,
        "fit_seconds": results.wall_time,
        "scans": [
            {"base": m.base.rmse, "final": m.final.rmse, "base_max": m.base.max_error, "final_max": m.final.max_error}
            for m in results.metrics
        ],
    }


def summarise(rows: list[dict]) -> dict:
    """Per class and overall: median/mean/max RMSE and max error of Sage and bespoke, and counts."""
    classes: dict[str, list[dict]] = {}
    for row in rows:
        for scan in row.get("scans", []):
            classes.setdefault(row["class"], []).append(scan)
            sample = row["class"][row["class"].rfind("("):] if row["class"].endswith("sample)") else ""
            classes.setdefault(f"all {sample}".strip(), []).append(scan)
    summary = {}
    for kind, scans in classes.items():
        base, final = [s["base"] for s in scans], [s["final"] for s in scans]
        summary[kind] = {
            "n_scans": len(scans),
            "sage_median": statistics.median(base), "bespoke_median": statistics.median(final),
            "sage_mean": statistics.mean(base), "bespoke_mean": statistics.mean(final),
            "sage_max": max(base), "bespoke_max": max(final),
            "sage_max_error": max(s["base_max"] for s in scans), "bespoke_max_error": max(s["final_max"] for s in scans),
            "median_reduction_pct": 100 * (1 - statistics.median(final) / statistics.median(base)),
            "n_worse_than_sage": sum(f > b + 1e-3 for b, f in zip(base, final)),
        }
    times = [row["fit_seconds"] for row in rows if "fit_seconds" in row]
    summary["fit_seconds_per_molecule"] = {"median": statistics.median(times), "max": max(times)} if times else None
    summary["failed"] = [f"{row['name']}: {row['error']}" for row in rows if "error" in row]
    return summary


def print_summary(report: dict) -> None:
    """One line per class (the overall rows last): RMSE median, mean and max, and max error, kcal/mol."""
    print(f"\n{report['part']} benchmark at commit {report['commit']} ({report['run_seconds']:.0f} s)"
          + (f", prior width {report['prior_width']:g}" if report.get("prior_width") else ""))
    print(f"{'class':34} {'n':>3} | {'median RMSE':>14} {'red %':>5} | {'mean RMSE':>11} | {'max RMSE':>11} | "
          f"{'max error':>11} | worse")
    print(f"{'':34} {'':>3} | {'Sage':>6} {'bsp':>7} {'':>5} | {'Sage':>5} {'bsp':>5} | {'Sage':>5} {'bsp':>5} | "
          f"{'Sage':>5} {'bsp':>5} |")
    classes = [(k, s) for k, s in report["summary"].items() if isinstance(s, dict) and "n_scans" in s]
    for kind, s in sorted(classes, key=lambda item: item[0].startswith("all")):
        print(f"{kind:34} {s['n_scans']:3d} | {s['sage_median']:6.3f} {s['bespoke_median']:7.3f} "
              f"{s['median_reduction_pct']:5.1f} | {s['sage_mean']:5.2f} {s['bespoke_mean']:5.2f} | "
              f"{s['sage_max']:5.2f} {s['bespoke_max']:5.2f} | {s['sage_max_error']:5.2f} "
              f"{s['bespoke_max_error']:5.2f} | {s['n_worse_than_sage']:5d}")
    print("fit time per molecule (s):", report["summary"]["fit_seconds_per_molecule"])
    for failure in report["summary"]["failed"]:
        print("failed:", failure)


def _commit() -> str:
    run = subprocess.run(["git", "-C", str(ROOT), "describe", "--always", "--dirty"], capture_output=True, text=True)
    return run.stdout.strip()


if __name__ == "__main__":
    main()
