"""The fit report: one self-contained HTML file with a plot and the numbers of every fitted torsion."""

from html.parser import HTMLParser

import pytest

import client_process

pytestmark = pytest.mark.slow


class Elements(HTMLParser):
    """Every start tag with its attributes, and the page's text."""

    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)


@pytest.fixture(scope="module")
def report(running_executor, tmp_path_factory):
    """`executor retrieve --report` of the first workflow, once it has finished."""
    workflow_id = running_executor.ids[0]
    result = running_executor.wait_until_complete(workflow_id)
    assert result.status == "success", result.error
    directory = tmp_path_factory.mktemp("report")
    code, stdout, stderr, _ = client_process.run(
        "executor", "retrieve", "--id", workflow_id, "--report", str(directory / "fit.html"),
        "--report-dir", str(directory / "plots"), "--scheduler", running_executor.scheduler_address,
    )
    assert code == 0, stderr
    page = Elements()
    page.feed((directory / "fit.html").read_text())
    return result, page, directory


def test_every_fitted_torsion_has_its_plot_and_its_numbers(report):
    result, page, directory = report
    text = " ".join(page.text)
    plots = [attrs for tag, attrs in page.tags if tag == "img" and attrs.get("alt", "").startswith("torsion profile")]
    assert len(plots) == len(result.results.metrics) >= 1
    assert all(attrs["src"].startswith("data:image/png;base64,") for attrs in plots)
    for metric in result.results.metrics:
        assert f"{metric.initial.rmse:.3f}" in text and f"{metric.final.rmse:.3f}" in text
    assert sorted(p.name for p in (directory / "plots").glob("*.png")) == [
        f"torsion-{i}.png" for i in range(1, len(plots) + 1)
    ]


def test_the_report_shows_the_molecule_parameters_qc_spec_and_versions(report):
    result, page, _ = report
    text = " ".join(page.text)
    assert any(tag == "svg" for tag, _ in page.tags)  # the molecule, drawn inline
    for parameter in result.results.parameters:
        assert parameter.smirks in text
        assert all(f"{k:.3f}" in text for k in parameter.k)
    assert "xtb gfn2xtb/none" in text
    assert "openff-toolkit" in text and "fragmentation" in text


def test_nothing_in_the_report_is_fetched_from_the_network(report):
    _, page, _ = report
    for tag, attrs in page.tags:
        for name in ("src", "href"):
            assert not attrs.get(name, "").startswith(("http:", "https:", "//")), (tag, attrs)
    assert not any(tag in ("script", "link", "iframe") for tag, _ in page.tags)
