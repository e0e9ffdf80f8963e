"""Finding a running executor's dashboard from its directory, and when not to use it."""

import json
import socket

from bespoke_dask.http_client import dashboard_of


def _record(directory, address, dashboard="http://127.0.0.1:8787/status"):
    (directory / "scheduler.json").write_text(json.dumps({"address": address, "dashboard": dashboard, "pid": 1}))


def test_the_dashboard_is_found_from_the_directory(tmp_path):
    _record(tmp_path, "tcp://127.0.0.1:8786")
    assert dashboard_of(tmp_path).url == "http://127.0.0.1:8787"
    assert dashboard_of(tmp_path, "tcp://127.0.0.1:8786").url == "http://127.0.0.1:8787"


def test_no_dashboard_for_tls_another_scheduler_or_none_recorded(tmp_path):
    assert dashboard_of(tmp_path) is None  # no executor ran here
    _record(tmp_path, "tls://127.0.0.1:8786")
    assert dashboard_of(tmp_path) is None  # the dashboard is plain HTTP: read through Dask's TLS instead
    _record(tmp_path, "tcp://127.0.0.1:8786")
    assert dashboard_of(tmp_path, "tcp://10.0.0.2:8786") is None  # the user asked for another executor
    _record(tmp_path, "tcp://127.0.0.1:8786", dashboard=None)
    assert dashboard_of(tmp_path) is None


def test_a_dashboard_that_does_not_answer_reads_as_none(tmp_path):
    with socket.socket() as closed:  # a port nothing listens on once this is closed
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    _record(tmp_path, "tcp://127.0.0.1:8786", dashboard=f"http://127.0.0.1:{port}/status")
    reader = dashboard_of(tmp_path)
    assert reader.list() is None
    assert reader.retrieve("1") is None
    assert reader.wait_until_complete("1") is None
