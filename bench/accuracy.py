"""Fit-quality benchmark: Sage vs ForceBalance-bespoke vs least-squares-bespoke torsion profiles.

What it measures. For every molecule below, one GFN2-xTB torsiondrive per symmetry-unique
target bond (default target SMARTS, Pfizer fragments, 15 degree grid) is fitted twice on the
SAME scans: by ForceBalance (BespokeFit's settings) and by the built-in least squares (`lsq`).
Both workflows differ only in `optimizer` and run on one `BespokeDaskExecutor`, so the
content-addressed store runs every QC calculation once. Reported per molecule, from
`FitResult`: the torsion-profile RMSE (kcal/mol) of plain Sage 2.2 (`FitResult.base`) and of
both bespoke force fields, over the grid points inside the fit window (protocol in
`FitResult.protocol`: torsion-restrained relaxed MM vs QC, aligned at the QC minimum; the
all-point RMSEs are in the JSON), the fit wall times (`FitResult.wall_time`), and how many k's lsq left to its
prior (`BespokeTorsion.k_determined`). Then medians, reductions vs Sage, FB/lsq time ratios
and the issue's targets. Raw numbers go to `bench/results/accuracy.json`.

How fit times are kept comparable. A fit computes the AM1-BCC charges of its fragments
(cached per worker process) inside `wall_time`, so whichever fit of a molecule ran first would
also pay for them (seconds per fragment: more than a whole lsq fit). So the run has two phases:
(1) a warm-up workflow per molecule (lsq, max_iterations=1; otherwise identical) runs all the
scans, then every optimizer worker pays its one-time costs (imports both backends, computes the
charges of every scanned fragment, builds one System); (2) the timed lsq and ForceBalance
workflows run on the stored scans, two fits at a time, so both `wall_time`s are the fit alone.
The charge cost is reported separately (`AM1BCC s`, measured afterwards in this process) and
folded into one extra summary ratio.

Settings: Pfizer fragmentation (fast; WBO would add AM1 time), one starting conformer per scan
(n_conformers=1, to fit the time budget on 2 cores), 2 QC and 2 optimizer workers.

Run (the full run took 44 min on the shared 2-core box, the quick one about 3 min):

    PATH=/work/main/.venv/bin:$PATH python bench/accuracy.py            # full
    PATH=/work/main/.venv/bin:$PATH python bench/accuracy.py --quick    # smoke test, minutes

The package imported is whatever `bespoke_dask` resolves to (recorded in the JSON); to pin a
commit while the checkout changes: `git archive HEAD bespoke_dask | tar -x -C DIR` and run with
PYTHONPATH=DIR (workers inherit it).

Rerunning on the same --directory reuses every finished scan and fit (fit times are then
those of the first run); use a fresh directory to re-time.
"""

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "warning")  # before dask is imported; workers inherit it

from distributed import Client
from rich.console import Console
from rich.markup import escape
from rich.table import Table

import bespoke_dask
from bespoke_dask import BespokeDaskExecutor, BespokeWorkerConfig, BespokeWorkflowFactory
from bespoke_dask.schema import (
    ForceBalanceSettings,
    LeastSquaresSettings,
    PfizerFragmentation,
    QCSpec,
    TorsionDriveSettings,
)

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results"

# (name, class, SMILES); rotatable bonds are by the default target SMARTS (methyl/NH2/NH3+/OH rotors excluded)
MOLECULES = [
    ("acetanilide", "amide", "CC(=O)Nc1ccccc1"),
    ("benzamide", "amide", "NC(=O)c1ccccc1"),
    ("biphenyl", "biaryl", "c1ccc(-c2ccccc2)cc1"),
    ("2-phenylpyridine", "biaryl", "c1ccc(-c2ccccn2)cc1"),
    ("1-phenylpyrazole", "biaryl (N-linked)", "c1ccc(-n2cccn2)cc1"),
    ("benzenesulfonamide", "sulfonamide", "NS(=O)(=O)c1ccccc1"),
    ("N-phenylmethanesulfonamide", "sulfonamide", "CS(=O)(=O)Nc1ccccc1"),
    ("diphenyl ether", "ether", "c1ccc(Oc2ccccc2)cc1"),
    ("N,N-dimethylaniline", "amine", "CN(C)c1ccccc1"),
    ("benzylammonium", "charged (protonated amine)", "[NH3+]Cc1ccccc1"),
    ("benzoate", "charged (carboxylate)", "[O-]C(=O)c1ccccc1"),
    ("phenacetin", "ether + amide, 4 rotatable", "CCOc1ccc(NC(C)=O)cc1"),
]
QUICK_MOLECULES = ["benzoate", "1-phenylpyrazole", "benzamide"]

FULL = {"grid_spacing": 15, "n_conformers": 1, "directory": RESULTS / "executor", "output": RESULTS / "accuracy.json"}
QUICK = {
    "grid_spacing": 30,
    "n_conformers": 1,
    "directory": RESULTS / "executor-quick",
    "output": RESULTS / "accuracy-quick.json",
}
TARGET_RMSE = 0.3  # kcal/mol, median bespoke RMSE
TARGET_REDUCTION = 60.0  # %, median reduction vs Sage
TARGET_SPEEDUP = 20.0  # FB/lsq fit time
POLL_SECONDS = 5.0
STATUS_EVERY = 60.0


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 molecules, 30 degree grid: a smoke test")
    parser.add_argument("--directory", type=Path, help="executor directory (store); reused if it exists")
    parser.add_argument("--output", type=Path, help="JSON results file")
    parser.add_argument("--n-conformers", type=int, help="starting conformers per scan (1-3; default 1)")
    parser.add_argument("--qc-workers", type=int, default=2, help="QC worker processes (default 2)")
    parser.add_argument("--optimizer-workers", type=int, default=2, help="fit worker processes (default 2)")
    args = parser.parse_args(argv)
    defaults = QUICK if args.quick else FULL
    args.grid_spacing = defaults["grid_spacing"]
    args.n_conformers = args.n_conformers or defaults["n_conformers"]
    args.directory = args.directory or defaults["directory"]
    args.output = args.output or defaults["output"]
    return args


def selected_molecules(quick: bool) -> list[tuple[str, str, str]]:
    return [m for m in MOLECULES if m[0] in QUICK_MOLECULES] if quick else MOLECULES


def make_factory(args: argparse.Namespace) -> BespokeWorkflowFactory:
    """The benchmark settings, lsq optimizer (the FB workflow swaps only `optimizer`)."""
    return BespokeWorkflowFactory(
        fragmentation=PfizerFragmentation(),
        qc_spec=QCSpec(program="xtb", method="gfn2xtb", basis=None),
        torsiondrive=TorsionDriveSettings(grid_spacing=args.grid_spacing, n_conformers=args.n_conformers),
        optimizer=LeastSquaresSettings(),
    )


def make_workflows(factory: BespokeWorkflowFactory, smiles: str) -> dict:
    """{'warmup': lsq with one iteration, 'forcebalance': ..., 'lsq': ...}: identical but for `optimizer`."""
    lsq = factory.optimization_schema_from_smiles(smiles)
    return {
        "warmup": lsq.model_copy(update={"optimizer": LeastSquaresSettings(max_iterations=1)}),
        "forcebalance": lsq.model_copy(update={"optimizer": ForceBalanceSettings()}),
        "lsq": lsq,
    }


def build_workflows(factory: BespokeWorkflowFactory, molecules) -> dict:
    """{name: workflows} or {name: {'error': message}} for input the factory rejects."""
    built = {}
    for name, _, smiles in molecules:
        try:
            built[name] = make_workflows(factory, smiles)
        except Exception as error:  # bad input: report it, carry on with the others
            built[name] = {"error": f"{type(error).__name__}: {error}"}
    return built


def submit(executor: BespokeDaskExecutor, workflows: dict, keys: tuple[str, ...], skip: dict) -> dict:
    """Submit the `keys` workflows of every molecule not in `skip`: {name: {key: id}}."""
    return {
        name: {key: executor.submit(by_key[key]) for key in keys}
        for name, by_key in workflows.items()
        if "error" not in by_key and name not in skip
    }


def scan_failures(warmups: dict) -> dict:
    """{name: error} of molecules whose fragmentation or scans failed in the warm-up phase."""
    failed = {}
    for name, outputs in warmups.items():
        output = outputs["warmup"]
        for stage in ("fragmentation", "qc-generation"):
            if output.stage(stage).status != "success":
                failed[name] = output.error or f"{stage}: {output.stage(stage).status}"
                break
    return failed


def scanned_fragments(warmups: dict) -> list[str]:
    """Mapped SMILES of every scanned fragment (the molecules the fits compute charges for)."""
    return sorted(
        {m.mapped_smiles for outputs in warmups.values() if outputs["warmup"].results for m in outputs["warmup"].results.metrics}
    )


def n_scans(outputs: dict | None) -> int:
    """How many scans a molecule's warm-up ran (0 if it has none)."""
    return len(outputs["warmup"].stage("qc-generation").scans) if outputs else 0


def warm_workers(executor: BespokeDaskExecutor, fragments: list[str], force_field: str) -> None:
    """Pay every optimizer worker's one-time costs before any timed fit (see `_warm`).

    Runs as an ordinary task holding the worker's `optimizer` resource, so no fit runs beside it.
    """
    with Client(executor.scheduler_address) as client:
        workers = [
            address
            for address, info in client.scheduler_info()["workers"].items()
            if str(info.get("name", "")).startswith("optimizer")
        ]
        futures = [
            client.submit(_warm, fragments, force_field, workers=[address], resources={"optimizer": 1}, pure=False)
            for address in workers
        ]
        client.gather(futures)


def _warm(fragments: list[str], force_field: str) -> int:
    """In a worker: import both backends, cache every fragment's AM1-BCC charges, build one System."""
    import importlib

    from bespoke_dask.stages.optimize.profiles import charged_molecule, load_force_field

    for backend in ("lsq", "forcebalance"):
        importlib.import_module(f"bespoke_dask.stages.optimize.{backend}")
    molecules = [charged_molecule(fragment) for fragment in fragments]
    if molecules:
        topology = molecules[0].to_topology()
        load_force_field(force_field).create_openmm_system(topology, charge_from_molecules=molecules[:1])
    return len(molecules)


def wait_all(executor: BespokeDaskExecutor, submitted: dict, console: Console, start: float) -> dict:
    """Poll until every workflow has finished; {name: {'lsq': output, 'forcebalance': output}}."""
    pending = {(name, key): wid for name, ids in submitted.items() for key, wid in ids.items()}
    outputs: dict = {name: {} for name in submitted}
    last_status = time.monotonic()
    while pending:
        for (name, key), wid in list(pending.items()):
            output = executor.retrieve(wid)
            if output.status in ("success", "errored", "cancelled"):
                outputs[name][key] = output
                del pending[(name, key)]
                say(console, f"[{elapsed(start)}] {name} / {key}: {output.status} {outcome(output)}")
        if pending and time.monotonic() - last_status > STATUS_EVERY:
            say(console, f"[{elapsed(start)}] {len(pending)} workflows running; {scan_status(executor, pending)}")
            last_status = time.monotonic()
        time.sleep(POLL_SECONDS if pending else 0)
    return outputs


def outcome(output) -> str:
    """One line on a finished workflow: its error, 'nothing to fit', or its RMSEs and fit time."""
    results = output.results
    if output.error or results is None:
        return output.error or ""
    if results.final is None:
        return results.message or ""
    return f"RMSE {results.initial.rmse:.3f} -> {results.final.rmse:.3f}, fit {results.wall_time:.1f} s"


def scan_status(executor: BespokeDaskExecutor, pending: dict) -> str:
    """Finished scans and grid points of the pending workflows (scans deduplicated by SMILES)."""
    scans = {}
    for wid in pending.values():
        for scan in executor.retrieve(wid).stage("qc-generation").scans:
            scans[scan.smiles] = max(scans.get(scan.smiles, (False, 0, 0)), (scan.status == "success", scan.grid_points_done, scan.grid_points))
    done = sum(finished for finished, _, _ in scans.values())
    points = sum(p for _, p, _ in scans.values()), sum(n for _, _, n in scans.values())
    return f"scans done {done}/{len(scans)}, grid points {points[0]}/{points[1]} (of the scans known so far)"


def say(console: Console, text: str) -> None:
    """A plain log line (SMILES and error messages hold brackets that are not markup)."""
    console.print(text, markup=False, highlight=False)


def elapsed(start: float) -> str:
    seconds = int(time.monotonic() - start)
    return f"{seconds // 60:3d}:{seconds % 60:02d}"


def fit_record(output) -> dict:
    """The numbers of one finished workflow (or its error)."""
    record = {"status": output.status, "error": output.error}
    results = output.results
    if results is None:
        return record
    record.update(
        message=results.message,
        wall_time=results.wall_time,
        base_rmse=results.base.rmse if results.base else None,
        base_rmse_all=results.base.rmse_all if results.base else None,
        final_rmse_all=results.final.rmse_all if results.final else None,
        initial_rmse=results.initial.rmse if results.initial else None,
        final_rmse=results.final.rmse if results.final else None,
        initial_max_error=results.initial.max_error if results.initial else None,
        final_max_error=results.final.max_error if results.final else None,
        parameters=[p.model_dump(mode="json") for p in results.parameters],
        torsions=[
            {
                "smirks": m.smirks,
                "fragment": m.mapped_smiles,
                "dihedral": list(m.dihedral),
                "initial_rmse": m.initial.rmse,
                "final_rmse": m.final.rmse,
            }
            for m in results.metrics
        ],
    )
    return record


def molecule_record(name: str, kind: str, smiles: str, error: str | None, outputs: dict) -> dict:
    """Everything known about one molecule: both fits, derived comparisons, charge cost."""
    record = {"name": name, "class": kind, "smiles": smiles, "error": error}
    fits = {key: fit_record(output) for key, output in outputs.items() if key != "warmup"}
    record["fits"] = fits
    lsq, fb = fits.get("lsq", {}), fits.get("forcebalance", {})
    record["n_torsions"] = len(lsq.get("torsions") or fb.get("torsions") or [])
    # Sage is the base force field (plain Sage 2.2), not the bespoke SMIRKS at their starting k's.
    record["sage_rmse"] = lsq.get("base_rmse") if lsq.get("base_rmse") is not None else fb.get("base_rmse")
    record["lsq_undetermined_k"] = count_undetermined(lsq.get("parameters") or [])
    record["n_k"] = sum(len(p["k"]) for p in lsq.get("parameters") or [])
    record["am1bcc_seconds"] = charge_seconds(lsq.get("torsions") or fb.get("torsions") or [])
    return record


def count_undetermined(parameters: list[dict]) -> int | None:
    flags = [flag for p in parameters for flag in (p.get("k_determined") or [])]
    return sum(not flag for flag in flags) if flags else None


def charge_seconds(torsions: list[dict]) -> float | None:
    """AM1-BCC time of the molecule's scanned fragments, measured here (uncached: fresh SMILES)."""
    if not torsions:
        return None
    from bespoke_dask.stages.optimize.profiles import am1bcc_charges

    start = time.perf_counter()
    for fragment in {t["fragment"] for t in torsions}:
        am1bcc_charges(fragment)
    return time.perf_counter() - start


def ok(record: dict, key: str) -> bool:
    fit = record["fits"].get(key, {})
    return fit.get("status") == "success" and fit.get("final_rmse") is not None


def reduction(sage: float, bespoke: float) -> float:
    return 100.0 * (sage - bespoke) / sage if sage else float("nan")


def summarise(records: list[dict]) -> dict:
    """Medians, reductions and time ratios over the molecules whose fits succeeded."""
    both = [r for r in records if ok(r, "lsq") and ok(r, "forcebalance")]
    summary = {"n_molecules": len(records), "n_both_succeeded": len(both)}
    for key, label in (("forcebalance", "fb"), ("lsq", "lsq")):
        good = [r for r in records if ok(r, key)]
        summary[f"n_{label}_succeeded"] = len(good)
        if good:
            summary[f"median_{label}_rmse"] = statistics.median(r["fits"][key]["final_rmse"] for r in good)
            summary[f"median_{label}_reduction_pct"] = statistics.median(
                reduction(r["sage_rmse"], r["fits"][key]["final_rmse"]) for r in good
            )
    sage = [r["sage_rmse"] for r in records if r.get("sage_rmse") is not None]
    if sage:
        summary["median_sage_rmse"] = statistics.median(sage)
    if both:
        fb_times = [r["fits"]["forcebalance"]["wall_time"] for r in both]
        lsq_times = [r["fits"]["lsq"]["wall_time"] for r in both]
        summary["median_time_ratio_fb_over_lsq"] = statistics.median(f / l for f, l in zip(fb_times, lsq_times))
        summary["total_time_ratio_fb_over_lsq"] = sum(fb_times) / sum(lsq_times)
        summary["total_fb_fit_seconds"], summary["total_lsq_fit_seconds"] = sum(fb_times), sum(lsq_times)
        charges = [r.get("am1bcc_seconds") or 0.0 for r in both]
        summary["total_am1bcc_seconds"] = sum(charges)
        summary["total_time_ratio_with_charges"] = (sum(fb_times) + sum(charges)) / (sum(lsq_times) + sum(charges))
        summary["n_lsq_rmse_le_fb"] = sum(
            r["fits"]["lsq"]["final_rmse"] <= r["fits"]["forcebalance"]["final_rmse"] for r in both
        )
    counted = [r for r in records if r.get("lsq_undetermined_k") is not None]
    summary["lsq_undetermined_k"] = sum(r["lsq_undetermined_k"] for r in counted)
    summary["lsq_total_k"] = sum(r["n_k"] for r in counted)
    return summary


def fmt(value, spec: str = ".3f") -> str:
    return "-" if value is None else format(value, spec)


def molecule_table(records: list[dict]) -> Table:
    table = Table(title="Torsion-profile RMSE (kcal/mol) and fit wall time (s) per molecule")
    for column in ("molecule", "class", "tors", "Sage", "FB", "lsq", "FB -%", "lsq -%", "FB s", "lsq s",
                   "FB/lsq", "AM1BCC s", "undet. k", "error"):
        table.add_column(column, justify="left" if column in ("molecule", "class", "error") else "right")
    for r in records:
        table.add_row(*map(escape, molecule_row(r)))
    return table


def molecule_row(r: dict) -> list[str]:
    fb, lsq = r["fits"].get("forcebalance", {}), r["fits"].get("lsq", {})
    sage = r.get("sage_rmse")
    fb_rmse = fb.get("final_rmse") if ok(r, "forcebalance") else None
    lsq_rmse = lsq.get("final_rmse") if ok(r, "lsq") else None
    ratio = fb["wall_time"] / lsq["wall_time"] if fb_rmse is not None and lsq_rmse is not None else None
    errors = "; ".join(e for e in (r.get("error"), fb_label(fb, "FB"), fb_label(lsq, "lsq")) if e)
    return [
        r["name"], r["class"], str(r["n_torsions"]), fmt(sage), fmt(fb_rmse), fmt(lsq_rmse),
        fmt(reduction(sage, fb_rmse) if fb_rmse is not None and sage else None, ".0f"),
        fmt(reduction(sage, lsq_rmse) if lsq_rmse is not None and sage else None, ".0f"),
        fmt(fb.get("wall_time") if fb_rmse is not None else None, ".1f"),
        fmt(lsq.get("wall_time") if lsq_rmse is not None else None, ".2f"),
        fmt(ratio, ".0f"), fmt(r.get("am1bcc_seconds"), ".1f"),
        "-" if r.get("lsq_undetermined_k") is None else f"{r['lsq_undetermined_k']}/{r['n_k']}",
        errors,
    ]


def fb_label(fit: dict, label: str) -> str | None:
    """'<label>: error' for a fit that did not succeed or fitted nothing."""
    if not fit:
        return None
    if fit.get("status") != "success":
        return f"{label}: {fit.get('error') or fit.get('status')}"
    return f"{label}: {fit['message']}" if fit.get("message") else None


def torsion_table(records: list[dict]) -> Table:
    table = Table(title="Per scanned torsion (fragment SMILES, RMSE kcal/mol)")
    for column in ("molecule", "fragment", "Sage", "FB", "lsq"):
        table.add_column(column, justify="left" if column in ("molecule", "fragment") else "right")
    for r in records:
        by_key = {k: r["fits"].get(k, {}).get("torsions") or [] for k in ("forcebalance", "lsq")}
        base = by_key["lsq"] or by_key["forcebalance"]
        for i, t in enumerate(base):
            fb = by_key["forcebalance"][i]["final_rmse"] if i < len(by_key["forcebalance"]) else None
            lsq = by_key["lsq"][i]["final_rmse"] if i < len(by_key["lsq"]) else None
            fragment = escape(unmapped(t["fragment"], t["dihedral"]))
            table.add_row(r["name"], fragment, fmt(t["initial_rmse"]), fmt(fb), fmt(lsq))
    return table


def unmapped(mapped_smiles: str, dihedral: list[int]) -> str:
    """Readable SMILES of a fragment, the scanned bond's atoms mapped 1 and 2."""
    from openff.toolkit import Molecule
    from rdkit import Chem

    rdmol = Molecule.from_mapped_smiles(mapped_smiles, allow_undefined_stereo=True).to_rdkit()
    for number, index in enumerate(dihedral[1:3], start=1):
        rdmol.GetAtomWithIdx(index).SetAtomMapNum(number)
    return Chem.MolToSmiles(Chem.RemoveHs(rdmol))


def summary_table(summary: dict) -> Table:
    table = Table(title="Summary (medians over molecules; time ratios over molecules where both fits succeeded)")
    table.add_column("quantity")
    table.add_column("value", justify="right")
    table.add_column("target", justify="right")
    rows = [
        ("molecules (both fits succeeded)", f"{summary['n_both_succeeded']}/{summary['n_molecules']}", ""),
        ("median Sage RMSE", fmt(summary.get("median_sage_rmse")), ""),
        ("median FB-bespoke RMSE", fmt(summary.get("median_fb_rmse")), target_mark(summary.get("median_fb_rmse"), TARGET_RMSE, "<=")),
        ("median lsq-bespoke RMSE", fmt(summary.get("median_lsq_rmse")), target_mark(summary.get("median_lsq_rmse"), TARGET_RMSE, "<=")),
        ("median % reduction vs Sage, FB", fmt(summary.get("median_fb_reduction_pct"), ".1f"), target_mark(summary.get("median_fb_reduction_pct"), TARGET_REDUCTION, ">=")),
        ("median % reduction vs Sage, lsq", fmt(summary.get("median_lsq_reduction_pct"), ".1f"), target_mark(summary.get("median_lsq_reduction_pct"), TARGET_REDUCTION, ">=")),
        ("median fit-time ratio FB/lsq", fmt(summary.get("median_time_ratio_fb_over_lsq"), ".1f"), target_mark(summary.get("median_time_ratio_fb_over_lsq"), TARGET_SPEEDUP, ">=")),
        ("total fit-time ratio FB/lsq", fmt(summary.get("total_time_ratio_fb_over_lsq"), ".1f"), target_mark(summary.get("total_time_ratio_fb_over_lsq"), TARGET_SPEEDUP, ">=")),
        ("total fit time FB / lsq (s)", f"{fmt(summary.get('total_fb_fit_seconds'), '.1f')} / {fmt(summary.get('total_lsq_fit_seconds'), '.1f')}", ""),
        ("total ratio if each fit also paid its AM1BCC", fmt(summary.get("total_time_ratio_with_charges"), ".1f"), ""),
        ("molecules with lsq RMSE <= FB RMSE", f"{summary.get('n_lsq_rmse_le_fb', '-')}/{summary['n_both_succeeded']}", ""),
        ("k's lsq flagged undetermined", f"{summary['lsq_undetermined_k']}/{summary['lsq_total_k']}", ""),
    ]
    for row in rows:
        table.add_row(*row)
    return table


def target_mark(value, target: float, relation: str) -> str:
    if value is None:
        return f"{relation} {target:g}"
    met = value <= target if relation == "<=" else value >= target
    return f"{relation} {target:g} {'MET' if met else 'NOT MET'}"


def run(args: argparse.Namespace, console: Console) -> tuple[list[dict], dict]:
    """Scans and charge warm-up, then the timed fits, all on one executor; records and summary."""
    molecules = selected_molecules(args.quick)
    workflows = build_workflows(make_factory(args), molecules)
    start = time.monotonic()
    with BespokeDaskExecutor(
        n_fragmenter_workers=1,
        n_qc_compute_workers=args.qc_workers,
        n_optimizer_workers=args.optimizer_workers,
        qc_compute_worker_config=BespokeWorkerConfig(n_cores=1),
        directory=args.directory,
    ) as executor:
        say(console, f"[{elapsed(start)}] executor up at {executor.directory}; phase 1: scans of {len(molecules)} molecules "
                      "(warm-up fits stop after one iteration: 'did not converge' warnings are expected)")
        warmups = wait_all(executor, submit(executor, workflows, ("warmup",), {}), console, start)
        failed = scan_failures(warmups)
        fragments = scanned_fragments(warmups)
        say(console, f"[{elapsed(start)}] phase 1 done; warming the optimizer workers ({len(fragments)} fragments)")
        warm_workers(executor, fragments, make_factory(args).initial_force_field)
        say(console, f"[{elapsed(start)}] phase 2: timed ForceBalance and lsq fits")
        largest_first = dict(sorted(workflows.items(), key=lambda item: -n_scans(warmups.get(item[0]))))
        outputs = wait_all(executor, submit(executor, largest_first, ("forcebalance", "lsq"), failed), console, start)
    errors = {name: by_key["error"] for name, by_key in workflows.items() if "error" in by_key} | failed
    records = [molecule_record(n, k, s, errors.get(n), outputs.get(n, {})) for n, k, s in molecules]
    return records, summarise(records)


def settings_of(args: argparse.Namespace) -> dict:
    return {
        "qc_spec": "xtb gfn2xtb (tblite GFN2-xTB), no basis",
        "fragmentation": "pfizer",
        "grid_spacing": args.grid_spacing,
        "n_conformers": args.n_conformers,
        "qc_workers": args.qc_workers,
        "optimizer_workers": args.optimizer_workers,
        "timing": "phase 1 scans + AM1-BCC warm-up, phase 2 timed fits (see docstring)",
        "forcebalance": ForceBalanceSettings().model_dump(),
        "lsq": LeastSquaresSettings().model_dump(),
        "initial_force_field": make_factory(args).initial_force_field,
        "target_torsion": make_factory(args).target_torsion_smirks,
        "directory": str(args.directory),
        "bespoke_dask": str(Path(bespoke_dask.__file__).parent),
    }


def main(argv=None) -> int:
    args = parse_args(argv)
    console = Console(width=None if sys.stdout.isatty() else 200)
    settings = settings_of(args)
    say(console, f"settings: {json.dumps({k: v for k, v in settings.items() if k not in ('forcebalance', 'lsq')})}")
    start = time.monotonic()
    records, summary = run(args, console)
    run_seconds = time.monotonic() - start
    console.print(molecule_table(records))
    console.print(torsion_table(records))
    console.print(summary_table(summary))
    say(console, f"total run wall time: {run_seconds / 60:.1f} min ({run_seconds:.0f} s)")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    document = {"settings": settings, "run_seconds": run_seconds, "summary": summary, "molecules": records}
    args.output.write_text(json.dumps(document, indent=2))
    say(console, f"raw numbers: {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
