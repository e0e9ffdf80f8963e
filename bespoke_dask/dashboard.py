"""The Bespoke page of the Dask dashboard (`/bespoke`) and its JSON routes (`/bespoke/api/workflows[/<id>]`,
and `/bespoke/api/outputs[/<id>]` for clients that read without Dask: `bespoke_dask.http_client`, which
also cancels with `POST /bespoke/api/outputs/<id>/cancel` and the executor's token).

A scheduler preload: `dask scheduler --preload bespoke_dask.dashboard`, or the scheduler option
`preload=["bespoke_dask.dashboard"]` (our clusters set it). Importing the module registers the page
and the routes, which Dask reads when the scheduler builds its HTTP server (after its preloads);
`dask_setup` adds the page to the dashboard's navigation bar.
"""

import base64
import html
import json
import time

import dask.config
from bokeh.layouts import column
from bokeh.models import ColumnDataSource, DataTable, Div, HTMLTemplateFormatter, TableColumn
from bokeh.palettes import Category10_10
from bokeh.plotting import figure
from distributed.dashboard import scheduler as dashboard
from distributed.dashboard.components.scheduler import BOKEH_THEME, env
from distributed.http.utils import RequestHandler

from bespoke_dask import service
from bespoke_dask.http_client import TOKEN_HEADER
from bespoke_dask.schema import BespokeExecutorOutput

PAGE = "/bespoke"
REFRESH = 1000  # ms between updates of an open page
_STAGE_LABELS = {"fragmentation": "fragmentation", "qc-generation": "QC torsiondrives", "optimization": "fit"}


async def coordinator_call(scheduler, operation: str, *args):
    """The one way this module reaches the coordinator beside `scheduler` (what clients call too)."""
    return await service.call(operation, *args, dask_scheduler=scheduler)


_parsed: dict[str, tuple[dict, BespokeExecutorOutput]] = {}  # workflow id -> (listed status, its model)


def parsed(listed: dict) -> BespokeExecutorOutput:
    """The model of a status the coordinator lists; parsed once per status pushed, not per request."""
    cached = _parsed.get(listed["id"])
    if cached is None or cached[0] is not listed:
        cached = _parsed[listed["id"]] = (listed, BespokeExecutorOutput.model_validate(listed))
    return cached[1]


# -- what the page and the JSON show ---------------------------------------------------
def summary(output: BespokeExecutorOutput, now: float | None = None) -> dict:
    """A workflow's table row: id, molecule, status, current stage, torsiondrive progress, elapsed s, error."""
    scans = output.stage("qc-generation").scans
    started = [stage.started_at for stage in output.stages if stage.started_at is not None]
    ended = [stage.ended_at for stage in output.stages if stage.ended_at is not None]
    finished = output.status in ("success", "errored", "cancelled")
    end = max(ended) if finished and ended else (now or time.time())
    current = next((stage.type for stage in output.stages if stage.status == "running"), None)
    return {
        "id": output.id,
        "smiles": output.readable(output.smiles),
        "status": output.status,
        "stage": current,
        "torsiondrives_done": sum(scan.status == "success" for scan in scans),
        "torsiondrives": len(scans),
        "grid_points_done": sum(scan.grid_points_done for scan in scans),
        "grid_points": sum(scan.grid_points for scan in scans),
        "optimizations": sum(scan.optimizations for scan in scans),
        "elapsed": round(end - min(started), 1) if started else 0.0,
        "error": output.error,
    }


def details(output: BespokeExecutorOutput) -> dict:
    """Everything about one workflow: its row, its stages and scans with their QC profiles, its fit."""
    return {**summary(output), "output": output.model_dump(mode="json")}


def profiles(output: BespokeExecutorOutput) -> list[dict]:
    """One plot's data per torsion: QC energies as they arrive; after the fit, the MM profiles too (kcal/mol)."""
    metrics = output.results.metrics if output.results is not None else []
    if metrics and metrics[0].angles:
        return [
            {
                "title": f"{output.readable(m.mapped_smiles)}, dihedral {m.dihedral}",
                "angles": m.angles,
                "qc": m.qc_energies,
                "initial": m.initial_energies,
                "bespoke": m.final_energies,
                "rmse": (m.initial.rmse if m.initial else float("nan"), m.final.rmse if m.final else float("nan")),
            }
            for m in metrics
        ]
    return [
        {"title": output.readable(scan.smiles), "angles": scan.angles, "qc": scan.energies}
        for scan in output.stage("qc-generation").scans
    ]


# -- the Bokeh page ----------------------------------------------------------------------
_COLUMNS = [
    ("id", "id", 40),
    ("molecule", "molecule", 260),
    ("status", "status", 70),
    ("stage", "stage", 120),
    ("torsiondrives", "torsiondrives", 90),
    ("grid_points", "grid points", 90),
    ("elapsed", "elapsed (s)", 70),
    ("error", "error", 360),
]


def _row(output: BespokeExecutorOutput, picture: str) -> dict:
    row = summary(output)
    row["molecule"] = f"{picture}<code>{html.escape(row['smiles'])}</code>"
    row["stage"] = _STAGE_LABELS.get(row["stage"], "") if row["stage"] else row["status"]
    row["torsiondrives"] = f"{row['torsiondrives_done']}/{row['torsiondrives']}"
    row["grid_points"] = f"{row['grid_points_done']}/{row['grid_points']}"
    row["error"] = row["error"] or ""
    return {name: row[name] for name, _, _ in _COLUMNS}


class BespokePage:
    """The live table of workflows, and the torsion profiles of the selected one."""

    def __init__(self, scheduler):
        self.scheduler = scheduler
        self.rows = ColumnDataSource({name: [] for name, _, _ in _COLUMNS})
        html_cell = HTMLTemplateFormatter(template="<%= value %>")
        self.table = DataTable(
            source=self.rows,
            columns=[
                TableColumn(field=name, title=title, width=width, formatter=html_cell)
                for name, title, width in _COLUMNS
            ],
            row_height=72,
            height=300,
            sizing_mode="stretch_width",
            index_position=None,
        )
        self.heading = Div(text="<h2>Bespoke fits</h2>")
        self.selected = Div(text="")
        self.plots = column(sizing_mode="stretch_width")
        self.root = column(self.heading, self.table, self.selected, self.plots, sizing_mode="stretch_width")
        self._shown: tuple = ()
        self._pictures: dict[str, str] = {}  # workflow id -> <img> of its drawing (drawn once)

    async def update(self) -> None:
        try:
            outputs = [parsed(listed) for listed in await coordinator_call(self.scheduler, "outputs")]
        except RuntimeError as error:  # no coordinator (yet, or any more) beside this scheduler
            self.selected.text = f"<p>{html.escape(str(error))}</p>"
            return
        rows = [_row(output, await self._picture(output.id)) for output in outputs]
        self._show_rows(rows)
        self.table.height = min(30 + 72 * max(len(rows), 1), 600)  # no empty rows, scroll beyond 8
        if not outputs:
            self.selected.text = "<p>No workflows yet: <code>bespoke-dask executor submit</code> one.</p>"
            return
        chosen = self.rows.selected.indices
        workflow_id = outputs[chosen[0]].id if chosen and chosen[0] < len(outputs) else outputs[-1].id
        output = await coordinator_call(self.scheduler, "output", workflow_id)
        self.selected.text = (
            f"<h3>Workflow {workflow_id}: torsion profiles</h3>"
            "<p>Select a row to show another workflow. Energies in kcal/mol relative to the QC minimum.</p>"
        )
        self._show_profiles(workflow_id, profiles(output))

    async def _picture(self, workflow_id: str) -> str:
        if workflow_id not in self._pictures:
            svg = await coordinator_call(self.scheduler, "depiction", workflow_id)
            if not svg:
                return ""
            encoded = base64.b64encode(svg.encode()).decode()
            self._pictures[workflow_id] = f'<img src="data:image/svg+xml;base64,{encoded}" height="64"> '
        return self._pictures[workflow_id]

    def _show_rows(self, rows: list[dict]) -> None:
        """Send the browser only what changed: new rows streamed, changed cells patched."""
        data = {name: [row[name] for row in rows] for name, _, _ in _COLUMNS}
        old = self.rows.data
        shown = len(old["id"])
        if shown > len(rows) or old["id"] != data["id"][:shown]:  # another coordinator's workflows
            self.rows.data = data
            return
        patches = {
            name: [(i, value) for i, (was, value) in enumerate(zip(old[name], data[name])) if was != value]
            for name in data
        }
        patches = {name: changes for name, changes in patches.items() if changes}
        if patches:
            self.rows.patch(patches)
        if len(rows) > shown:
            self.rows.stream({name: values[shown:] for name, values in data.items()})

    def _show_profiles(self, workflow_id: str, data: list[dict]) -> None:
        shape = (workflow_id, tuple((d["title"], "bespoke" in d) for d in data))
        if shape != self._shown:
            self.plots.children = [_profile_figure(d) for d in data]
            self._shown = shape
        for plot, d in zip(self.plots.children, data):
            for renderer in plot.renderers:
                series = renderer.name
                renderer.data_source.data = {"angle": d["angles"], "energy": d.get(series) or []}


def _profile_figure(data: dict):
    title = data["title"]
    if "rmse" in data:
        title += "   RMSE initial {:.2f}, bespoke {:.2f} kcal/mol".format(*data["rmse"])
    plot = figure(
        title=title, height=260, width=520, x_axis_label="dihedral (degrees)",
        y_axis_label="energy (kcal/mol)", x_range=(-185, 185),
    )
    series = [("qc", "QC", Category10_10[0])]
    if "bespoke" in data:
        series += [("initial", "initial MM", Category10_10[1]), ("bespoke", "bespoke MM", Category10_10[2])]
    for name, label, color in series:
        source = ColumnDataSource({"angle": [], "energy": []})
        plot.line("angle", "energy", source=source, color=color, legend_label=label, line_width=2, name=name)
        if name == "qc":  # points as they arrive: one is already worth seeing
            plot.scatter("angle", "energy", source=source, color=color, legend_label=label, size=7, name=name)
    plot.legend.location = "top_left"
    return plot


def bespoke_doc(scheduler, extra, doc):
    """The `/bespoke` Bokeh document (Dask calls it per browser session)."""
    page = BespokePage(scheduler)
    doc.add_next_tick_callback(page.update)
    doc.add_periodic_callback(page.update, REFRESH)
    doc.title = "Dask: Bespoke fits"
    doc.add_root(page.root)
    doc.template = env.get_template("simple.html")
    doc.template_variables.update(extra)
    doc.theme = BOKEH_THEME


# -- JSON ------------------------------------------------------------------------------
class _JSONHandler(RequestHandler):
    def write_json(self, value) -> None:
        self.set_header("Content-Type", "application/json")
        self.write(json.dumps(value))


class WorkflowsHandler(_JSONHandler):
    """GET /bespoke/api/workflows: every workflow's row."""

    async def get(self):
        self.write_json([self.render(listed) for listed in await coordinator_call(self.server, "outputs")])

    @staticmethod
    def render(listed: dict) -> dict:
        return summary(parsed(listed))


class WorkflowHandler(_JSONHandler):
    """GET /bespoke/api/workflows/<id>: one workflow in full (stages, scans with QC profiles, fit)."""

    render = staticmethod(details)

    async def get(self, workflow_id: str):
        output = await coordinator_call(self.server, "output", workflow_id)
        if output is None:
            self.set_status(404)
            self.write_json({"error": f"no workflow with id {workflow_id}"})
            return
        self.write_json(self.render(output))


class OutputsHandler(WorkflowsHandler):
    """GET /bespoke/api/outputs: every workflow as `BespokeExecutorOutput` JSON, without results or drawing."""

    render = staticmethod(lambda listed: listed)  # already the JSON of each status


class OutputHandler(WorkflowHandler):
    """GET /bespoke/api/outputs/<id>: one workflow as `BespokeExecutorOutput` JSON (`executor retrieve`)."""

    render = staticmethod(lambda output: output.model_dump(mode="json"))


class CancelHandler(_JSONHandler):
    """POST /bespoke/api/outputs/<id>/cancel, with the token of the executor's scheduler.json in the
    TOKEN_HEADER header (a custom header: a web page of another origin cannot send it): the
    workflow's `BespokeExecutorOutput` JSON once it has stopped."""

    async def post(self, workflow_id: str):
        if not service.token_accepted(self.server, self.request.headers.get(TOKEN_HEADER, "")):
            self.set_status(403)
            self.write_json({"error": "cancelling needs the token of the executor's scheduler.json"})
            return
        output = await coordinator_call(self.server, "cancel", workflow_id)
        if output is None:
            self.set_status(404)
            self.write_json({"error": f"no workflow with id {workflow_id}"})
            return
        self.write_json(output.model_dump(mode="json"))


routes = [
    ("bespoke/api/workflows/?", WorkflowsHandler, {}),
    (r"bespoke/api/workflows/([^/]+)/?", WorkflowHandler, {}),
    ("bespoke/api/outputs/?", OutputsHandler, {}),
    (r"bespoke/api/outputs/([^/]+)/?", OutputHandler, {}),
    (r"bespoke/api/outputs/([^/]+)/cancel/?", CancelHandler, {}),
]


# -- registration (on import: before the scheduler builds its HTTP server) ----------------
def _register() -> None:
    dashboard.applications[PAGE] = bespoke_doc
    modules = dask.config.get("distributed.scheduler.http.routes")
    if __name__ not in modules:
        dask.config.set({"distributed.scheduler.http.routes": [*modules, __name__]})


def dask_setup(scheduler) -> None:
    """Dask's preload hook: link the page from the dashboard's navigation bar."""
    if getattr(scheduler, "http_application", None) is None:
        return
    pages = dashboard.template_variables(scheduler)["pages"]  # memoized: the dict the pages render with
    if PAGE.strip("/") not in pages:
        pages.append(PAGE.strip("/"))


_register()
