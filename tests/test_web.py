"""The web server without a browser: what the page sends is checked on the server (one readable line
back), files stay inside the data folder, uploads are limited, another address needs the operator's
token, and a pipeline that does not answer is reported, not waited on forever. The server runs as a
real `sustainml web` process; no pipeline runs beside it here (the browser tests run it with one)."""

import json
import os
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from sustainml import msg
from sustainml.report import status_name
from sustainml.web import views
from sustainml.datasets import DataPolicy
from sustainml.web.server import HOSTS_ENV, TOKEN_ENV, WebConfig
from sustainml.exceptions import ConfigError

from conftest import ROOT, WebProcess


# ---------------------------------------------------------------- a real server process

@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "data"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "wear.csv").write_text("a,b\n1,2\n")
    (tmp_path / "secret.csv").write_text("x\n1\n")
    return folder


class PageServer(WebProcess):
    """A `sustainml web` process asked as its own page asks it: a request that changes something
    carries the page's Origin, as a browser's does (``WebProcess.request(server, ...)`` sends none)."""

    def request(self, path: str, *, data: bytes | None = None, headers: dict[str, str] | None = None,
                method: str | None = None) -> tuple[int, dict[str, str], bytes]:
        if data is not None or method not in (None, "GET", "HEAD"):
            headers = {"Origin": self.url, **(headers or {})}
        return super().request(path, data=data, headers=headers, method=method)


@pytest.fixture
def server(dds, data_dir: Path) -> Iterator[PageServer]:
    web = PageServer("--data-dir", str(data_dir), "--max-upload-mb", "0.01", "--request-timeout", "2")
    yield web
    web.stop()


def multipart(filename: str, content: bytes) -> tuple[bytes, dict[str, str]]:
    boundary = "sustainmltestboundary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\n"
            f"Content-Type: text/csv\r\n\r\n").encode() + content + f"\r\n--{boundary}--\r\n".encode()
    return body, {"Content-Type": f"multipart/form-data; boundary={boundary}"}


# ---------------------------------------------------------------- over HTTP

def test_the_page_and_its_chart_library_are_served_from_this_machine(server):
    status, headers, page = server.request("/")
    assert status == 200 and b"SustainML" in page
    assert "script-src 'self'" in headers["Content-Security-Policy"]
    assert b"http://" not in page and b"https://" not in page     # nothing from a CDN
    status, _, plotly_js = server.request("/vendor/plotly.min.js")
    assert status == 200 and len(plotly_js) > 1_000_000
    for name in ("app.js", "style.css"):
        status, _, body = server.request(f"/static/{name}")
        assert status == 200 and b"http://" not in body and b"https://" not in body


@pytest.mark.parametrize("path", ["/static/../server.py", "/static/%2e%2e/server.py", "/static/..%2fserver.py",
                                  "/static//etc/passwd", "/static/%2e%2e/%2e%2e/%2e%2e/etc/passwd"])
def test_no_request_path_leaves_the_static_folder(server, path):
    status, _, body = server.request(path)
    assert status in (403, 404)
    assert b"import" not in body and b"root:" not in body


def test_a_dataset_outside_the_data_folder_is_refused_with_one_line(server):
    # The task encoder's own rule (dataset_profile.resolve_dataset), applied before anything is submitted.
    for path, expected in (("../secret.csv", "outside the allowed data folder"),
                           ("/etc/passwd", "outside the allowed data folder"), ("nope.csv", "does not exist")):
        status, body = server.post_json("/api/submit", {"problem": {"text": "predict wear", "dataset": {"path": path}}})
        assert status == 400 and expected in body["error"] and "\n" not in body["error"]


@pytest.mark.parametrize("body, expected", [
    ({"problem": {"txet": "typo"}}, "unknown key 'txet'"),
    ({"problem": {"text": "x", "usage": {"requests_per_day": -5}}}, "must not be negative"),
    ({"problem": {"text": "x", "epochs": "ten"}}, "must be a number"),
    ({"problem": {}}, "give 'text'"),
    ({"nothing": 1}, 'expected a JSON object {"problem"'),
    ({"problem": {"text": "x"}, "problem_id": "../../etc"}, "problem_id '../../etc'"),
    ({"problem": {"text": "x", "measurement_budget_s": -5}}, "'measurement_budget_s' must not be negative"),
    ({"problem": {"text": "x", "measurement_budget_s": "30 s"}}, "'measurement_budget_s' must be a number"),
    # Python's json writes and reads Infinity and NaN, which JSON has not: a script may send them.
    ({"problem": {"text": "x", "measurement_budget_s": float("inf")}}, "Infinity is not a number JSON has"),
    ({"problem": {"text": "x", "usage": {"horizon_days": float("nan")}}}, "NaN is not a number JSON has"),
])
def test_bad_problems_get_a_readable_error(server, body, expected):
    status, reply = server.post_json("/api/submit", body)
    assert status == 400 and expected in reply["error"] and "\n" not in reply["error"]


def test_the_page_promises_a_first_answer_in_seconds_and_offers_a_measurement_budget(server):
    _, _, page = server.request("/")
    assert b"under a minute" not in page
    assert b"a first ranked answer in seconds from estimates" in page
    assert b'name="measurement_budget_s"' in page


def test_a_body_that_is_not_json_is_refused(server):
    status, _, raw = server.request("/api/submit", data=b"text=x", headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 400 and b"expected a JSON body" in raw
    status, _, raw = server.request("/api/submit", data=b"{not json", headers={"Content-Type": "application/json"})
    assert status == 400 and b"not valid JSON" in raw


def test_a_request_from_another_site_cannot_change_anything(server):
    status, body = server.post_json("/api/submit", {"problem": {"text": "x"}}, Origin="http://evil.example")
    assert status == 403 and "this server's own page" in body["error"]
    # A form or a script without an Origin changes nothing either (a task it names or not).
    status, _, raw = WebProcess.request(server, "/api/tasks/nope/1/cancel", data=b"{}",
                                        headers={"Content-Type": "application/json"})
    assert status == 403 and b"got no Origin" in raw


def test_only_requests_that_name_this_server_are_answered(dds, data_dir):
    """A page on evil.example that resolves to 127.0.0.1 (DNS rebinding) sends Host: evil.example; the
    server answers its own address, localhost, and the names the operator lists."""
    web = PageServer("--data-dir", str(data_dir), env={HOSTS_ENV: "sustainml.lab.example"})
    try:
        port = web.url.rsplit(":", 1)[1]
        for host, expected in ((f"evil.example:{port}", 421), (f"127.0.0.1:{int(port) + 1}", 421),
                               (f"localhost:{port}", 200), (f"sustainml.lab.example:{port}", 200)):
            status, _, raw = web.request("/api/data", headers={"Host": host})
            assert status == expected, raw
        assert b"does not answer to Host 'evil.example" in web.request("/api/data", headers={"Host": "evil.example"})[2]
    finally:
        web.stop()


def test_no_pipeline_is_reported_not_waited_on(server):
    # The server gives up after its --request-timeout (2 s here); a hang would fail on urlopen's 30 s.
    status, body = server.post_json("/api/submit", {"problem": {"text": "predict wear", "train_region": "DEU"}})
    assert status == 503 and "is the pipeline running?" in body["error"]


def test_uploads_land_in_the_data_folder_under_a_safe_name(server, data_dir):
    body, headers = multipart("../../evil name.csv", b"a,b\n1,2\n")
    status, _, raw = server.request("/api/upload", data=body, headers=headers)
    assert status == 200, raw
    reply = json.loads(raw)
    assert reply["path"] == "uploads/evil_name.csv"
    assert (data_dir / "uploads" / "evil_name.csv").read_bytes() == b"a,b\n1,2\n"
    status, _, raw = server.request("/api/upload", data=body, headers=headers)   # never replaces a file
    assert json.loads(raw)["path"] == "uploads/evil_name-1.csv"
    status, _, raw = server.request("/api/data")
    assert "uploads/evil_name.csv" in json.loads(raw)["files"] and "sub/wear.csv" in json.loads(raw)["files"]


def test_uploads_are_size_limited_and_typed(server, data_dir):
    body, headers = multipart("big.csv", b"a\n" + b"1\n" * 20_000)          # 40 kB over a 10 kB limit
    status, _, raw = server.request("/api/upload", data=body, headers=headers)
    assert status == 413 and b"larger than the 0.01 MiB limit" in raw
    assert not list((data_dir / "uploads").glob("big*"))                     # nothing half-written is left
    body, headers = multipart("model.pkl", b"x")
    status, _, raw = server.request("/api/upload", data=body, headers=headers)
    assert status == 400 and b"give a table file" in raw


def test_another_address_needs_the_operators_token(dds, data_dir):
    run = subprocess.run([sys.executable, "-m", "sustainml.cli", "web", "--host", "0.0.0.0", "--port", "0"],
                         capture_output=True, text=True, timeout=60, env={**os.environ, TOKEN_ENV: ""})
    assert run.returncode != 0
    assert run.stderr.strip().count("\n") == 0 and TOKEN_ENV in run.stderr

    token = "t0k3n-" + "x" * 20
    web = WebProcess("--host", "127.0.0.2", "--data-dir", str(data_dir), env={TOKEN_ENV: token})
    try:
        status, _, raw = web.request("/")
        assert status == 401 and b"token" in raw
        status, headers, _ = web.request(f"/?token={token}")
        assert status == 200 and "sustainml_token=" in headers.get("Set-Cookie", "")
        status, _, _ = web.request("/api/data", headers={"Cookie": f"sustainml_token={token}"})
        assert status == 200
        status, _, _ = web.request("/api/data", headers={"Authorization": f"Bearer {token}"})
        assert status == 200
        status, _, _ = web.request("/api/data", headers={"Authorization": "Bearer wrong-token-wrong-token"})
        assert status == 401
    finally:
        web.stop()


# ---------------------------------------------------------------- the logic, as plain functions

def test_config_check_refuses_what_would_expose_or_fail(tmp_path):
    with pytest.raises(ConfigError, match=TOKEN_ENV):
        WebConfig(host="0.0.0.0", data_dir=tmp_path).check()
    with pytest.raises(ConfigError, match="too short"):
        WebConfig(host="0.0.0.0", token="short", data_dir=tmp_path).check()
    with pytest.raises(ConfigError, match="does not exist"):
        WebConfig(data_dir=tmp_path / "missing").check()
    WebConfig(host="::1", data_dir=tmp_path).check()
    WebConfig(host="localhost", data_dir=tmp_path).check()


def test_the_host_names_the_operator_allows_come_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv(HOSTS_ENV, "SustainML.lab.example, gpu-box:8050,")
    assert WebConfig(data_dir=tmp_path).allowed_hosts == ("sustainml.lab.example", "gpu-box:8050")
    monkeypatch.setenv(HOSTS_ENV, "http://evil.example/")
    with pytest.raises(ConfigError, match=f"{HOSTS_ENV}: 'http://evil.example/' is not a host name"):
        WebConfig(data_dir=tmp_path).check()


def test_a_measurement_budget_is_kept_with_the_problem(tmp_path):
    policy = DataPolicy.from_params(str(tmp_path), 1.0)
    problem = views.checked_problem({"problem": {"text": "x", "measurement_budget_s": 12.5}}, policy)
    assert problem.measurement_budget_s == 12.5
    assert views.checked_problem({"problem": {"text": "x"}}, policy).measurement_budget_s == 0.0   # the node's default


@pytest.mark.parametrize("state, revision, final", [
    (msg.TaskState.TASK_RUNNING, 1, False), (msg.TaskState.TASK_RUNNING, 4, False),
    (msg.TaskState.TASK_DONE, 5, True), (msg.TaskState.TASK_CANCELLED, 2, True),
])
def test_every_revision_of_a_result_is_an_event_the_page_follows(state, revision, final):
    result = msg.TaskResult(task_id=msg.TaskId(problem_id="p", iteration=2), state=state, revision=revision)
    assert views.result_event(result) == {"task": "p/2", "state": status_name(state), "revision": revision,
                                          "final": final}


def test_upload_names_keep_only_the_base_name():
    assert views.upload_name("C:\\Users\\me\\wear data.csv") == "wear_data.csv"
    assert views.upload_name("../../.bashrc.csv") == "bashrc.csv"
    with pytest.raises(views.WebInputError, match="give a table file"):
        views.upload_name("x.pt")


def _result(quality: float, co2_g: float, latency_ms: float, *, metric: str = "top1_accuracy",
            higher: bool = True, model: str = "resnet18", iteration: int = 1) -> dict:
    option = {"rank": 1, "model": model, "device": "cpu", "host": "vm", "region": "DEU",
              "quality": {"metric": metric, "value": quality, "higher_is_better": higher},
              "latency_ms": latency_ms, "co2_g": {"total": co2_g}, "sci_g_per_request": 0.0}
    return {"task_id": {"problem_id": "p", "iteration": iteration}, "options": [option, {**option, "rank": 0}],
            "status": "running", "revision": 3, "final": False, "error": "", "task_type": "image_classification",
            "metric": metric, "submitted_unix_s": 1.0}


def test_what_moved_is_said_in_points_and_kilograms_a_year():
    moved = views.compare_results(_result(0.750, 1_000.0, 2.0), _result(0.755, 7_400.0, 3.0, model="resnet50"),
                                  horizon_days=730)
    assert moved["lines"] == [
        "recommendation: resnet18 on cpu in DEU → resnet50 on cpu in DEU",
        "+0.5 points of top1_accuracy costs 6.4 kg CO2e over 730 days (3.2 kg a year)",
        "latency 2 → 3 ms (+1 ms)",
    ]
    assert moved["co2_g_change"] == pytest.approx(6_400.0)


def test_what_moved_for_an_error_metric_and_for_nothing():
    moved = views.compare_results(_result(0.50, 300.0, 1.0, metric="rmse", higher=False),
                                  _result(0.46, 200.0, 1.0, metric="rmse", higher=False))
    assert moved["lines"] == ["rmse 0.5 → 0.46 (better) saves 100 g CO2e"]
    same = views.compare_results(_result(0.5, 1.0, 1.0), _result(0.5, 1.0, 1.0))
    assert same["lines"] == ["nothing moved: the same recommendation with the same figures"]
    empty = views.compare_results({"options": []}, _result(0.5, 1.0, 1.0))
    assert empty["lines"] == ["the earlier iteration has no option to compare"]


def test_options_export_as_csv_with_dotted_columns():
    import io

    import pandas as pd
    frame = pd.read_csv(io.StringIO(views.options_csv(_result(0.75, 12.5, 2.0))))
    assert list(frame["task"]) == ["p/1", "p/1"]
    assert list(frame["co2_g.total"]) == [12.5, 12.5]
    assert list(frame["quality.metric"]) == ["top1_accuracy"] * 2


def test_a_running_revision_is_listed_in_the_history_with_its_number():
    row = views.history_row(_result(0.75, 12.5, 2.0))
    assert (row["task"], row["status"], row["revision"], row["final"]) == ("p/1", "running", 3, False)
    assert row["best"]["model"] == "resnet18"


def test_data_files_lists_tables_and_skips_hidden_and_environment_folders(tmp_path):
    for name in ("a.csv", "b/c.parquet", ".git/x.csv", ".venv/lib/y.csv", "pkg.egg-info/SOURCES.txt", "notes.txt",
                 "model.pt"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x")
    assert views.data_files(tmp_path) == ["a.csv", "b/c.parquet"]


def test_the_examples_data_folder_is_listed_from_the_repository():
    assert "examples/data/cnc_tool_wear.csv" in views.data_files(ROOT)


@pytest.mark.pipeline
def test_the_main_job_serves_the_web_ui_until_interrupted(dds):
    """README's main command: `sustainml demo --web` launches, submits, prints, then serves the UI."""
    proc = subprocess.Popen([sys.executable, "-u", "-m", "sustainml.cli", "demo", "--web", "--port", "0",
                             "examples/tool_wear_tabular.yaml"], cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env={**os.environ, "COLUMNS": "200"})
    try:
        url, lines = "", []
        for line in proc.stdout:
            lines.append(line)
            if "web UI on http" in line and not url:
                url = line.split("web UI on ", 1)[1].split()[0].rstrip("/")
            if "Ctrl-C to stop" in line:
                break
        assert url and any("Recommended:" in line for line in lines), "".join(lines)
        with urllib.request.urlopen(url + "/", timeout=30) as page:
            assert b"SustainML" in page.read()
        with urllib.request.urlopen(url + "/api/history", timeout=30) as reply:
            history = json.loads(reply.read())
        assert [row["status"] for row in history] == ["done"] and history[0]["best"]["model"]
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()


@pytest.mark.parametrize("path", sorted((ROOT / "examples").glob("*.yaml")), ids=lambda p: p.name)
def test_a_problem_reads_back_from_its_file_view(path):
    """A result carries its problem (TaskResult.problem); the page starts the next iteration from it."""
    from sustainml.problem import load_problem, problem_from_dict, problem_to_dict
    problem = load_problem(path)
    assert problem_from_dict(problem_to_dict(problem)) == problem
