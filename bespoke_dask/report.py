"""The fit report: one self-contained HTML file (plots and drawing inline, nothing fetched) and PNG plots.

Per torsion scan: the QC profile and the base, initial and bespoke MM profiles on one plot with
their RMSE; the fitted parameters before and after; the QC spec, versions and timings. Chemistry-side
code (it draws the molecule with rdkit), loaded only when a report is asked for.
"""

import base64
import io
import re
from pathlib import Path

from jinja2 import Environment
from matplotlib.figure import Figure

from bespoke_dask.schema import BespokeExecutorOutput, BespokeTorsion, ProfileError, TorsionMetrics
from bespoke_dask.stages.depict import drawing

_SERIES = (  # (field of TorsionMetrics, label, matplotlib style)
    ("qc_energies", "QC", {"color": "black", "marker": "o", "linestyle": "-"}),
    ("base_energies", "base force field", {"color": "tab:gray", "linestyle": ":"}),
    ("initial_energies", "initial", {"color": "tab:blue", "linestyle": "--"}),
    ("final_energies", "bespoke", {"color": "tab:orange", "linestyle": "-", "linewidth": 2}),
)


def write_report(output: BespokeExecutorOutput, path: Path, figures_dir: Path | None = None) -> list[Path]:
    """Write the report of a workflow to `path` and its plots as PNG files to `figures_dir`.

    `figures_dir` defaults to `<report name>-plots/` beside the report. Returns the PNG paths.
    """
    path = Path(path)
    figures_dir = Path(figures_dir) if figures_dir else path.with_name(f"{path.stem}-plots")
    result = output.results
    metrics = result.metrics if result is not None else []
    pngs = []
    torsions = []
    for index, metric in enumerate(metrics, start=1):
        png = profile_png(output, metric)
        if png is None:
            continue
        figures_dir.mkdir(parents=True, exist_ok=True)
        pngs.append(figures_dir / f"torsion-{index}.png")
        pngs[-1].write_bytes(png)
        torsions.append({"metric": metric, "png": base64.b64encode(png).decode(), "label": _label(output, metric)})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(output, torsions))
    return pngs


def profile_png(output: BespokeExecutorOutput, metric: TorsionMetrics) -> bytes | None:
    """One torsion's QC and MM profiles (kcal/mol against degrees) as a PNG; None without profiles."""
    if not metric.angles or not metric.qc_energies:
        return None
    figure = Figure(figsize=(6.4, 4.0), dpi=110, layout="constrained")
    axes = figure.subplots()
    errors = {"base_energies": metric.base, "initial_energies": metric.initial, "final_energies": metric.final}
    for field, label, style in _SERIES:
        energies = getattr(metric, field)
        if len(energies) != len(metric.angles):
            continue
        error = errors.get(field)
        if error is not None and field != "qc_energies":
            label += f" (RMSE {error.rmse:.2f})"
        axes.plot(metric.angles, energies, label=label, **style)
    axes.set_xlabel("dihedral angle (degrees)")
    axes.set_ylabel("relative energy (kcal/mol)")
    axes.set_title(_label(output, metric), fontsize=10)
    axes.set_xlim(-185, 185)
    axes.set_xticks(range(-180, 181, 60))
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def render(output: BespokeExecutorOutput, torsions: list[dict]) -> str:
    """The report's HTML: everything inline, no scripts, no links to fetch."""
    result = output.results
    parameters = result.parameters if result is not None else []
    bonds = [(a + 1, b + 1) for parameter in parameters for a, b in parameter.parent_bonds]
    picture = drawing(output.smiles, bonds, size=(480, 320))
    return _TEMPLATE.render(
        output=output,
        result=result,
        smiles=picture.smiles,
        svg=_inline_svg(picture.svg),
        torsions=torsions,
        parameter_rows=_parameter_rows(parameters, result.initial_parameters if result is not None else []),
        stages=[
            (stage.type, stage.status, _duration(stage.started_at, stage.ended_at), stage.error)
            for stage in output.stages
        ],
    )


def _parameter_rows(fitted: list[BespokeTorsion], initial: list[BespokeTorsion]) -> list[dict]:
    """One row per term: SMIRKS (first term only), n, phase, k before and after, ±, determined."""
    before = {parameter.smirks: parameter for parameter in initial}
    rows = []
    for parameter in fitted:
        start = before.get(parameter.smirks)
        uncertainty = parameter.k_uncertainty or [None] * len(parameter.k)
        determined = parameter.k_determined or [None] * len(parameter.k)
        for index, n in enumerate(parameter.periodicities):
            rows.append(
                {
                    "smirks": parameter.smirks if index == 0 else "",
                    "span": len(parameter.periodicities) if index == 0 else 0,
                    "n": n,
                    "phase": parameter.phases[index],
                    "k_before": start.k[index] if start is not None and index < len(start.k) else None,
                    "k_after": parameter.k[index],
                    "uncertainty": uncertainty[index],
                    "determined": determined[index],
                }
            )
    return rows


def _label(output: BespokeExecutorOutput, metric: TorsionMetrics) -> str:
    return f"{output.readable(metric.mapped_smiles)}, dihedral {'-'.join(map(str, metric.dihedral))}"


def _duration(start: float | None, end: float | None) -> str:
    return "" if start is None or end is None else f"{end - start:.1f} s"


def _inline_svg(svg: str) -> str:
    """rdkit's SVG without its XML prolog, ready to sit inside HTML."""
    return re.sub(r"<\?xml[^>]*\?>", "", svg).strip()


def _kcal(error: ProfileError | None, field: str = "rmse") -> str:
    """A profile error's field (kcal/mol) for a table cell; empty when there is none."""
    value = None if error is None else getattr(error, field)
    return "" if value is None else f"{value:.3f}"


_ENVIRONMENT = Environment(autoescape=True)
_ENVIRONMENT.filters["kcal"] = _kcal
_TEMPLATE = _ENVIRONMENT.from_string(
    """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>Bespoke fit report: workflow {{ output.id }}</title>
<style>
body { font-family: sans-serif; max-width: 1000px; margin: 2em auto; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: right; font-size: 0.9em; }
th { background: #f3f3f3; } td.text, th.text { text-align: left; }
code { font-size: 0.85em; word-break: break-all; }
.bad { color: #b00; } .held { color: #a60; }
section.torsion { border-top: 1px solid #ddd; padding-top: 1em; }
</style></head>
<body>
<h1>Bespoke fit report: workflow {{ output.id }}</h1>
<p style="font-size: 1.2em"><code style="font-size: 1em">{{ smiles }}</code> &mdash; status <b>{{ output.status }}</b>
{% if output.error %}<br><span class="bad">{{ output.error }}</span>{% endif %}</p>
<figure class="molecule">{{ svg | safe }}<figcaption>Fitted bonds highlighted.</figcaption></figure>

{% if result %}
<h2>Fit quality (RMSE against the QC scans, kcal/mol)</h2>
<table class="metrics">
<tr><th class="text">torsion</th><th>base</th><th>initial</th><th>bespoke</th><th>bespoke max</th>
<th>initial, all points</th><th>bespoke, all points</th></tr>
{% for t in torsions %}{% set m = t.metric %}
<tr><td class="text">{{ t.label }}</td><td>{{ m.base | kcal }}</td>
<td>{{ m.initial | kcal }}</td><td><b>{{ m.final | kcal }}</b></td><td>{{ m.final | kcal("max_error") }}</td>
<td>{{ m.initial | kcal("rmse_all") }}</td><td>{{ m.final | kcal("rmse_all") }}</td></tr>
{% endfor %}
{% if result.final %}<tr><td class="text"><b>molecule</b></td><td>{{ result.base | kcal }}</td>
<td>{{ result.initial | kcal }}</td><td><b>{{ result.final | kcal }}</b></td><td>{{ result.final | kcal("max_error") }}</td>
<td>{{ result.initial | kcal("rmse_all") }}</td><td>{{ result.final | kcal("rmse_all") }}</td></tr>{% endif %}
</table>
<p>{{ result.protocol }}.</p>
{% if result.message %}<p>{{ result.message }}</p>{% endif %}

<h2>Torsion profiles</h2>
{% for t in torsions %}
<section class="torsion" id="torsion-{{ loop.index }}">
<h3>{{ t.label }}</h3>
<img alt="torsion profile {{ loop.index }}" src="data:image/png;base64,{{ t.png }}">
<p>RMSE initial <span class="rmse-initial">{{ t.metric.initial | kcal }}</span> kcal/mol,
bespoke <span class="rmse-final">{{ t.metric.final | kcal }}</span> kcal/mol
{% if t.metric.base %}(base force field {{ t.metric.base | kcal }}){% endif %}.</p>
</section>
{% endfor %}

<h2>Fitted parameters (k in kcal/mol)</h2>
<table class="parameters">
<tr><th class="text">SMIRKS</th><th>n</th><th>phase</th><th>k before</th><th>k after</th><th>&plusmn;</th>
<th class="text">determined by the scans</th></tr>
{% for row in parameter_rows %}
<tr>{% if row.span %}<td class="text" rowspan="{{ row.span }}"><code>{{ row.smirks }}</code></td>{% endif %}
<td>{{ row.n }}</td><td>{{ "%.0f" % row.phase }}</td>
<td>{{ "%.3f" % row.k_before if row.k_before is not none else "" }}</td><td><b>{{ "%.3f" % row.k_after }}</b></td>
<td>{{ "%.3f" % row.uncertainty if row.uncertainty is not none else "" }}</td>
<td class="text">{% if row.determined is none %}{% elif row.determined %}yes{% else %}<span class="held">no: held by the prior</span>{% endif %}</td></tr>
{% endfor %}
</table>
{% endif %}

<h2>How it was made</h2>
<table class="run">
{% if output.qc_spec %}<tr><th class="text">QC spec</th><td class="text">{{ output.qc_spec.program }} {{ output.qc_spec.method }}/{{ output.qc_spec.basis or "none" }}</td></tr>{% endif %}
{% if result %}<tr><th class="text">optimizer</th><td class="text">{{ result.optimizer }} ({{ "%.1f" % result.wall_time }} s)</td></tr>{% endif %}
{% for type, status, duration, error in stages %}
<tr><th class="text">{{ type }}</th><td class="text">{{ status }} {{ duration }}{% if error %} <span class="bad">{{ error }}</span>{% endif %}</td></tr>
{% endfor %}
</table>
{% if result and result.provenance %}
<table class="versions"><tr><th class="text">package</th><th class="text">version</th></tr>
{% for name, version in result.provenance | dictsort %}<tr><td class="text">{{ name }}</td><td class="text">{{ version }}</td></tr>{% endfor %}
</table>{% endif %}
</body></html>
"""
)
