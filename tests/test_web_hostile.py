"""The web server against hostile requests, as a page on another site, a DNS-rebinding attacker or a
careless script would send them: every endpoint with a foreign Host, a missing or foreign Origin,
JSON with huge numbers, NaN, deep nesting, huge strings and wrong types, hostile query parameters
and oversized bodies. The server answers each with one readable line (never a 500, never a
traceback), keeps answering, and stores nothing. The cases of issue 15 are tests of their own.

The server runs as a real `sustainml web` process against the session's shared pipeline, so what
would reach the store really could; the checks themselves are also tested as plain functions."""

import http.client
import json
import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sustainml.web import views

from test_web import PageServer, multipart

# ---------------------------------------------------------------- the checks, as plain functions


@pytest.mark.parametrize("body, expected", [
    ('{"n": ' + "9" * 101 + "}", "out of range"),
    ('{"n": -' + "9" * 30_000 + "}", "out of range"),
    ('{"n": 1e999}', "out of range"),
    ('{"n": 2e15}', "out of range"),
    ('{"n": NaN}', "NaN is not a number JSON has"),
    ('{"n": -Infinity}', "-Infinity is not a number JSON has"),
    ("[" * 2000 + "]" * 2000, "nested too deeply"),
    ('{"a":' * 9 + "1" + "}" * 9, "nested too deeply"),
    ('{"t": "' + "x" * 10_001 + '"}', "at most 10000"),
    ('{"t": "\\ud800"}', "lone surrogate \\ud800"),
    ('{"t": "a\\u0000b"}', "NUL character"),
    ('{"l": [' + ",".join(["1"] * 1001) + "]}", "1001 entries"),
    ('{"t": "x"', "not valid JSON"),
])
def test_a_hostile_body_is_refused_before_anything_reads_it(body, expected):
    with pytest.raises(views.WebInputError, match=None) as refused:
        views.parse_json(body)
    assert expected in str(refused.value) and "\n" not in str(refused.value) and len(str(refused.value)) < 400


def test_a_problem_sized_body_reads_as_it_is():
    body = {"problem": {"text": "predict wear", "usage": {"requests_per_day": 1e6, "horizon_days": 730},
                        "intensity_overrides": [{"region": "DEU", "intensity_g_per_kwh": 380.5}],
                        "dataset": {"num_samples": 10**12, "input_shape": [3, 224, 224]}}}
    assert views.parse_json(json.dumps(body)) == body


@pytest.mark.parametrize("host, local, names, allowed", [
    ("127.0.0.1:8050", "127.0.0.1", (), True),
    ("localhost:8050", "127.0.0.1", (), True),
    ("LOCALHOST.:8050", "127.0.0.1", (), True),
    ("[::1]:8050", "::1", (), True),
    ("evil.example:8050", "127.0.0.1", (), False),          # DNS rebinding: a foreign name that resolves here
    ("evil.example", "127.0.0.1", (), False),
    ("127.0.0.1:8051", "127.0.0.1", (), False),             # another port: another server
    ("127.0.0.1", "127.0.0.1", (), False),                  # port 80
    ("localhost:8050", "192.168.1.5", (), False),           # a remote page that says localhost
    ("192.168.1.5:8050", "::ffff:192.168.1.5", (), True),   # the address the request came in on
    ("sustainml.lab.example:8050", "192.168.1.5", ("sustainml.lab.example",), True),
    ("sustainml.lab.example:9000", "192.168.1.5", ("sustainml.lab.example:8050",), False),
    ("", "127.0.0.1", (), False),
    (None, "127.0.0.1", (), False),
    ("[::1", "::1", (), False),
    ("127.0.0.1:99999", "127.0.0.1", (), False),
    ("a" * 300 + ":8050", "127.0.0.1", (), False),
    ("127.0.0.1:8050/evil", "127.0.0.1", (), False),
])
def test_the_host_header_must_name_this_server(host, local, names, allowed):
    refusal = views.host_refusal(host, local, 8050, names)
    assert (refusal == "") == allowed, refusal
    assert "\n" not in refusal and len(refusal) < 600


@pytest.mark.parametrize("problem_id, iteration, expected", [
    ("p", "9" * 40, "expected a whole number from 1 to 4294967295"),
    ("p", str(2**32), "expected a whole number from 1 to 4294967295"),
    ("p", "0", "from 1"),
    ("p", "١", "from 1"),                                    # a digit to str.isdigit, not to the store
    ("../../etc", "1", "problem_id '../../etc'"),
    ("x" * 65, "1", "at most 64"),
    ("", "1", "expected a task id"),
])
def test_a_task_id_out_of_range_is_refused(problem_id, iteration, expected):
    with pytest.raises(views.WebInputError) as refused:
        views.checked_task_id(problem_id, iteration)
    assert expected in str(refused.value)


@pytest.mark.parametrize("text", ["nan", "inf", "-1", "1e999", "9" * 400, "x", "1e12"])
def test_a_page_cursor_is_a_time(text):
    with pytest.raises(views.WebInputError, match="seconds since 1970"):
        views.checked_before(text)
    assert views.checked_before("1796525659.5") == 1796525659.5 and views.checked_before("") == 0.0


# ---------------------------------------------------------------- over HTTP, with the pipeline

@pytest.fixture(scope="module")
def _servers() -> Iterator[dict[str, PageServer]]:
    started: dict[str, PageServer] = {}
    yield started
    for web in started.values():
        web.stop()


@pytest.fixture
def web(shared_pipeline, _servers, tmp_path_factory) -> PageServer:
    """One `sustainml web` process for this module, on the shared pipeline's domain and store."""
    if "web" not in _servers:
        data = tmp_path_factory.mktemp("webdata")
        (data / "wear.csv").write_text("a,b\n1,2\n")
        _servers["web"] = PageServer("--data-dir", str(data), "--max-upload-mb", "0.01", "--request-timeout", "10")
        _servers["web"].data_dir = data
    return _servers["web"]


class Reply:
    def __init__(self, status: int, body: bytes) -> None:
        self.status, self.body = status, body

    @property
    def error(self) -> str:
        """The server's line: ``{"error": ...}``, or the plain text with which aiohttp refuses what is not
        HTTP (a request without a Host header) before the application sees it."""
        try:
            return json.loads(self.body)["error"]
        except ValueError:
            return self.body.decode().strip()


OWN = "own"   # send(): this server's own Host or Origin


def send(web: PageServer, method: str, path: str, *, body: bytes | None = None, host: str | None = OWN,
         origin: str | None = OWN, content_type: str | None = "application/json",
         headers: dict[str, str] | None = None, read_limit: int = 1 << 16) -> Reply:
    """One request exactly as given: ``host``/``origin`` OWN = this server's own, None = no header at
    all (http.client sends nothing it is not told to)."""
    address = web.url.split("//", 1)[1]
    conn = http.client.HTTPConnection(address, timeout=30)
    try:
        conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        if host is not None:
            conn.putheader("Host", address if host is OWN else host)
        if origin is not None and method not in ("GET", "HEAD"):
            conn.putheader("Origin", web.url if origin is OWN else origin)
        if body is not None:
            if content_type:
                conn.putheader("Content-Type", content_type)
            conn.putheader("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            conn.putheader(name, value)
        conn.endheaders(body)
        reply = conn.getresponse()
        return Reply(reply.status, reply.read(read_limit))
    except (ConnectionResetError, BrokenPipeError):
        return Reply(0, b"")   # the server closed on an oversized body before reading it: not a 500
    finally:
        conn.close()


def assert_one_line(reply: Reply, *statuses: int) -> None:
    assert reply.status in statuses, (reply.status, reply.body[:300])
    assert b"Traceback" not in reply.body and b"File \"" not in reply.body
    error = reply.error
    assert error and "\n" not in error and len(error) <= 1000


def stored_tasks(web: PageServer) -> set[str]:
    reply = send(web, "GET", "/api/history?limit=200", read_limit=1 << 28)   # the whole page
    assert reply.status == 200, reply.body
    return {row["task"] for row in json.loads(reply.body)}


def stored_notes(web: PageServer) -> int:
    reply = send(web, "GET", "/api/evidence?limit=5000", read_limit=1 << 28)   # the shared store grows
    assert reply.status == 200, reply.body
    return len(json.loads(reply.body)["notes"])


def a_task(web: PageServer) -> str:
    """A task of the store's (PROBLEM_ID/ITERATION), submitted by this test when the store has none."""
    reply = send(web, "POST", "/api/submit", body=json.dumps({"problem": {
        "text": "predict tool wear from the table", "dataset": {"path": "wear.csv"}}}).encode())
    assert reply.status == 200, reply.body
    return json.loads(reply.body)["task"]


# ---- the cases of issue 15, one by one

def test_num_samples_of_ten_to_the_hundred_is_refused_in_one_line(web):
    before = stored_tasks(web)
    reply = send(web, "POST", "/api/submit",
                 body=json.dumps({"problem": {"text": "x", "dataset": {"num_samples": 10**100}}}).encode())
    assert_one_line(reply, 400)
    assert "out of range" in reply.error
    assert stored_tasks(web) == before


def test_nan_is_refused_in_one_line(web):
    for body in (b'{"problem": {"text": "x", "epochs": NaN}}', b'{"problem": {"text": "x", "pue": Infinity}}'):
        reply = send(web, "POST", "/api/submit", body=body)
        assert_one_line(reply, 400)
        assert "is not a number JSON has" in reply.error


def test_two_thousand_deep_nesting_is_refused_in_one_line(web):
    for path in ("/api/submit", "/api/encode", "/api/notes"):
        reply = send(web, "POST", path, body=b"[" * 2000 + b"]" * 2000)
        assert_one_line(reply, 400)
        assert "nested too deeply" in reply.error


def test_a_huge_iteration_is_refused_in_one_line(web):
    huge = "9" * 40
    for method, path in (("GET", f"/api/tasks/p/{huge}"), ("GET", f"/api/tasks/p/{huge}/export.csv"),
                         ("POST", f"/api/tasks/p/{huge}/cancel"), ("GET", f"/api/compare?a=p/{huge}&b=p/1")):
        reply = send(web, method, path, body=b"{}" if method == "POST" else None)
        assert_one_line(reply, 400)
        assert "to 4294967295" in reply.error


def test_a_dns_rebinding_page_creates_nothing_and_reads_nothing(web):
    """A page on evil.example whose name resolves to 127.0.0.1: its requests carry its own name as
    Host and as Origin, which match each other but not this server."""
    port = web.url.rsplit(":", 1)[1]
    before = stored_tasks(web)
    evil = f"evil.example:{port}"
    reply = send(web, "POST", "/api/submit", host=evil, origin=f"http://{evil}",
                 body=json.dumps({"problem": {"text": "predict tool wear"}}).encode())
    assert_one_line(reply, 421)
    assert "does not answer to Host 'evil.example" in reply.error
    for path in ("/api/history", "/api/events", "/api/evidence", "/api/data", "/"):
        reply = send(web, "GET", path, host=evil)
        assert_one_line(reply, 421)
    assert stored_tasks(web) == before


def test_a_post_without_origin_changes_nothing_and_a_task_that_does_not_exist_is_not_found(web):
    task = a_task(web)
    problem_id, iteration = task.split("/")
    reply = send(web, "POST", f"/api/tasks/{problem_id}/{iteration}/cancel", origin=None, body=b"{}")
    assert_one_line(reply, 403)
    assert "got no Origin" in reply.error
    reply = send(web, "GET", f"/api/tasks/{problem_id}/{iteration}")
    assert reply.status == 200 and json.loads(reply.body)["status"] != "cancelled"

    reply = send(web, "POST", "/api/tasks/nope/1/cancel", body=b"{}")
    assert_one_line(reply, 404)
    assert reply.error == "no task nope/1 in the store"
    reply = send(web, "POST", f"/api/tasks/{problem_id}/{int(iteration) + 1000}/cancel", body=b"{}")
    assert_one_line(reply, 404)
    reply = send(web, "POST", f"/api/tasks/{problem_id}/{iteration}/cancel", body=b"{}")   # with its Origin: done
    assert reply.status in (200, 409), reply.body   # 409: it had ended already


def test_the_history_pages_back_through_the_store(web):
    """Each page says where the next (older) one starts; following them lists each task once, newest first."""
    mine = [a_task(web), a_task(web)]
    for task in mine:   # they need not run: the page is about the store
        send(web, "POST", f"/api/tasks/{task}/cancel", body=b"{}")
    first = send(web, "GET", "/api/history?limit=1")
    assert first.status == 200 and json.loads(first.body)[0]["task"] == mine[1]
    seen, path = [], "/api/history?limit=1"
    while path and len(seen) < 3:
        address = web.url.split("//", 1)[1]
        conn = http.client.HTTPConnection(address, timeout=30)
        conn.request("GET", path)
        reply = conn.getresponse()
        rows, link = json.loads(reply.read()), reply.getheader("Link") or ""
        conn.close()
        seen += [row["task"] for row in rows]
        assert len(rows) == 1 and (not link or link.endswith('>; rel="next"'))
        path = link[1:link.index(">")] if link else ""
        assert not path or "before=" in path
    assert seen[:2] == [mine[1], mine[0]] and len(set(seen)) == len(seen)


def test_the_event_stream_answers_its_own_page(web):
    address = web.url.split("//", 1)[1]
    conn = http.client.HTTPConnection(address, timeout=10)
    try:
        conn.request("GET", "/api/events")
        reply = conn.getresponse()
        assert reply.status == 200 and reply.getheader("Content-Type") == "text/event-stream"
        assert reply.readline() == b"event: board\n"
    finally:
        conn.close()


# ---- the fuzz: every endpoint, hostile in every way, generated

PROBLEM = {"text": "predict tool wear from the table", "dataset": {"path": "wear.csv"}}
#: Every route and method (the event stream only where it is refused: it would stream for ever).
GETS = ["/", "/vendor/plotly.min.js", "/static/app.js", "/api/task_types", "/api/history", "/api/compare?a=p&b=p",
        "/api/nodes", "/api/events", "/api/data", "/api/evidence", "/api/tasks/p/1", "/api/tasks/p/1/export.csv",
        "/api/tasks/p/1/export.json"]
POSTS = ["/api/encode", "/api/submit", "/api/tasks/p/1/cancel", "/api/upload", "/api/notes"]
#: Values no field of a problem may take, each for its own reason.
HOSTILE_VALUES: list[tuple[str, bytes]] = [
    ("10**100", b"1" + b"0" * 100), ("-10**100", b"-1" + b"0" * 100), ("10**20", b"1" + b"0" * 20),
    ("30,000 digits", b"7" * 30_000), ("1e999", b"1e999"), ("-1e999", b"-1e999"), ("1e300", b"1e300"),
    ("NaN", b"NaN"), ("Infinity", b"Infinity"), ("-Infinity", b"-Infinity"), ("-1", b"-1"), ("-0.5", b"-0.5"),
    ("2000 deep list", b"[" * 2000 + b"]" * 2000), ("20 deep object", b'{"a":' * 20 + b"1" + b"}" * 20),
    ("100,000 chars", json.dumps("x" * 100_000).encode()), ("lone surrogate", b'"\\udc00"'),
    ("NUL", b'"a\\u0000b"'), ("10,000 items", json.dumps(list(range(10_000))).encode()),
    ("object", b'{"x": 1}'), ("nested list", b"[[1, 2], [3]]"), ("bool", b"true"),
]
#: Fields of a problem, each given every hostile value (text and lists accept a number as a name, so
#: those get only the values no field accepts).
NUMBER_FIELDS = [("epochs",), ("dataset", "num_samples"), ("usage", "requests_per_day"), ("usage", "horizon_days"),
                 ("constraints", "max_latency_ms"), ("measurement_budget_s",), ("pue",)]
TEXT_FIELDS = [("text",), ("train_region",), ("hardware",), ("dataset", "input_shape")]
TEXT_HOSTILE = {"10**100", "-10**100", "30,000 digits", "1e999", "NaN", "Infinity", "2000 deep list", "20 deep object",
                "100,000 chars", "lone surrogate", "NUL", "10,000 items", "object", "nested list", "bool"}
#: Bodies that are hostile as a whole.
WHOLE_BODIES: list[tuple[str, bytes, str | None]] = [
    ("empty", b"", "application/json"), ("truncated", b'{"problem": {"text": "x"', "application/json"),
    ("top-level list", b'[{"problem": {}}]', "application/json"), ("null", b"null", "application/json"),
    ("string", b'"problem"', "application/json"), ("not UTF-8", b'{"problem": {"text": "\xff\xfe"}}', "application/json"),
    ("form", b"problem=x", "application/x-www-form-urlencoded"), ("no type", b'{"problem": {}}', None),
    ("2 MiB", b'{"problem": {"text": "' + b"x" * (2 << 20) + b'"}}', "application/json"),
    ("100,000 deep", b"[" * 100_000 + b"]" * 100_000, "application/json"),
    ("100,000 keys", json.dumps({f"k{i}": i for i in range(100_000)}).encode(), "application/json"),
    ("problem a list", b'{"problem": [1, 2]}', "application/json"),
    ("problem_id hostile", json.dumps({"problem": PROBLEM, "problem_id": "../../etc/passwd"}).encode(), "application/json"),
    ("problem_id number", json.dumps({"problem": PROBLEM, "problem_id": 10**30}).encode(), "application/json"),
    ("unknown key", json.dumps({"problem": {**PROBLEM, "evil": 1}}).encode(), "application/json"),
    ("overrides hostile", json.dumps({"problem": {**PROBLEM, "intensity_overrides": [{"region": "DEU",
                                      "intensity_g_per_kwh": -5}]}}).encode(), "application/json"),
]
#: Query parameters that no endpoint takes as they are.
HOSTILE_QUERIES = [
    "/api/history?limit=-1", "/api/history?limit=0", "/api/history?limit=" + "9" * 100, "/api/history?limit=1e3",
    "/api/history?limit=NaN", "/api/history?limit=%C2%B2", "/api/history?limit=%D9%A1%D9%A2",
    "/api/history?problem_id=../../etc", "/api/history?problem_id=" + "a" * 1000, "/api/history?problem_id=%00",
    "/api/history?before=nan", "/api/history?before=inf", "/api/history?before=-1", "/api/history?before=1e999",
    "/api/history?before=" + "9" * 400, "/api/history?before=%00",
    "/api/evidence?limit=-5", "/api/evidence?limit=" + "9" * 50, "/api/evidence?model=" + "m" * 5000,
    "/api/evidence?device=%00", "/api/compare", "/api/compare?a=/&b=%23", "/api/compare?a=p/0x10&b=p/1",
    "/api/compare?a=p/-1&b=p/1", "/api/compare?a=p/" + "9" * 30 + "&b=p/1", "/api/compare?a=p&b=p&horizon_days=nan",
    "/api/compare?a=p&b=p&horizon_days=inf", "/api/compare?a=p&b=p&horizon_days=-5",
    "/api/compare?a=p&b=p&horizon_days=1e309", "/api/compare?a=" + "p" * 5000 + "&b=p",
    "/api/tasks/p/0", "/api/tasks/p/" + "9" * 4000, "/api/tasks/%2e%2e/1", "/api/tasks/" + "p" * 500 + "/1",
    "/api/tasks/p%00/1", "/api/tasks/%F0%9F%92%A3/1", "/api/tasks/p/1/export.xml", "/api/tasks/p/1/export.csv?x=" + "y" * 3000,
]
BAD_HOSTS = ["evil.example", "evil.example:{port}", "127.0.0.1:1", "localhost.evil.example:{port}", "",
             "[::1", "127.0.0.1:99999", "a" * 300, "127.0.0.1.nip.io:{port}", "{port}", None]
BAD_ORIGINS = [None, "http://evil.example", "null", "http://127.0.0.1:1", "https://{addr}", "http://localhost:{port}",
               "http://{addr}.evil.example", "file://", "http://{addr}/" + "x" * 5000]


def set_field(problem: dict[str, Any], path: tuple[str, ...], raw: bytes) -> bytes:
    """The body ``{"problem": problem}`` with ``path`` replaced by the raw JSON text ``raw`` (which
    json.dumps could not write: NaN as JSON has none, 10**100 as digits)."""
    marker = "@@HOSTILE@@"
    copy = json.loads(json.dumps(problem))
    target = copy
    for key in path[:-1]:
        target = target.setdefault(key, {})
    target[path[-1]] = marker
    return json.dumps({"problem": copy}).encode().replace(f'"{marker}"'.encode(), raw)


def hostile_requests(web: PageServer) -> Iterator[tuple[str, dict[str, Any], tuple[int, ...]]]:
    """(what, send()'s arguments, statuses that are right) for every hostile request."""
    addr = web.url.split("//", 1)[1]
    port = addr.rsplit(":", 1)[1]
    for host in BAD_HOSTS:
        host = host if host is None else host.format(port=port)
        for path in GETS:
            yield f"GET {path} Host {host!r}", dict(method="GET", path=path, host=host), (400, 421)
        for path in POSTS:
            origin = f"http://{host}" if host else None
            yield (f"POST {path} Host {host!r}", dict(method="POST", path=path, host=host, origin=origin,
                                                     body=json.dumps({"problem": PROBLEM}).encode()), (400, 421))
    for origin in BAD_ORIGINS:
        origin = origin if origin is None else origin.format(addr=addr, port=port)
        for path in POSTS:
            yield (f"POST {path} Origin {str(origin)[:40]!r}",
                   dict(method="POST", path=path, origin=origin, body=json.dumps({"problem": PROBLEM}).encode()), (403,))
    for path in ("/api/encode", "/api/submit"):
        for fields in (NUMBER_FIELDS, TEXT_FIELDS):
            for field in fields:
                for name, raw in HOSTILE_VALUES:
                    if fields is TEXT_FIELDS and name not in TEXT_HOSTILE:
                        continue
                    yield (f"POST {path} {'.'.join(field)}={name}",
                           dict(method="POST", path=path, body=set_field(PROBLEM, field, raw)), (400, 413))
    for path in ("/api/encode", "/api/submit", "/api/notes"):
        for name, body, kind in WHOLE_BODIES:
            yield f"POST {path} {name}", dict(method="POST", path=path, body=body, content_type=kind), (400, 413, 0)
    for name, raw in HOSTILE_VALUES:
        for key in ("task", "text", "model"):
            note = {"task": "p/1", "model": "m", "device": "cpu", "host": "h", "text": "t"}
            body = json.dumps({**note, key: "@@H@@"}).encode().replace(b'"@@H@@"', raw)
            yield f"POST /api/notes {key}={name}", dict(method="POST", path="/api/notes", body=body), (400, 404, 413)
    for path in HOSTILE_QUERIES:
        yield f"GET {path[:60]}", dict(method="GET", path=path), (400, 404)
    table, form = multipart("a.csv", b"a\n1\n")
    form_type = form["Content-Type"]
    for name, body, kind in [
        ("oversized", multipart("big.csv", b"a\n" + b"1\n" * 20_000)[0], form_type),
        ("no boundary", b"--x\r\n", "multipart/form-data"),
        ("wrong boundary", table.replace(b"sustainmltestboundary", b"other"), form_type),
        ("truncated", table[:60], form_type),
        ("a pickle", multipart("model.pkl", b"x")[0], form_type),
        ("no filename", table.replace(b'; filename="a.csv"', b""), form_type),
        ("another field", table.replace(b'name="file"', b'name="evil"'), form_type),
        ("empty", multipart("empty.csv", b"")[0], form_type),
        ("json", b'{"file": "a.csv"}', "application/json"),
        ("a path", multipart("../../../../etc/cron.d/x", b"a\n1\n")[0], form_type),
        ("a hostile boundary", table, "multipart/form-data; boundary=" + "b" * 5000),
    ]:
        yield f"POST /api/upload {name}", dict(method="POST", path="/api/upload", body=body, content_type=kind), (400, 413, 0)


def test_hostile_requests_to_every_endpoint_get_one_line_and_change_nothing(web):
    tasks, notes = stored_tasks(web), stored_notes(web)
    uploads_before = set((web.data_dir / "uploads").glob("*")) if (web.data_dir / "uploads").exists() else set()
    tried, start = 0, time.monotonic()
    wrong = []
    for what, request, statuses in hostile_requests(web):
        reply = send(web, **request)
        tried += 1
        if reply.status not in statuses or b"Traceback" in reply.body or b'File "' in reply.body:
            wrong.append(f"{what}: {reply.status} {reply.body[:200]!r}")
        elif reply.status:
            error = reply.error
            if "\n" in error or len(error) > 1000:
                wrong.append(f"{what}: not one line: {error[:200]!r}")
    print(f"{tried} hostile requests in {time.monotonic() - start:.1f} s, {len(wrong)} wrong")
    assert tried >= 200
    assert not wrong, "\n".join(wrong[:20])
    # Still answering, nothing stored, nothing uploaded but what the upload fuzz refused, no traceback logged.
    assert send(web, "GET", "/api/nodes").status == 200
    assert stored_tasks(web) == tasks and stored_notes(web) == notes
    uploads = set((web.data_dir / "uploads").glob("*")) if (web.data_dir / "uploads").exists() else set()
    assert uploads == uploads_before
    assert "Traceback" not in "".join(web.output)


def test_a_problem_at_the_limits_is_still_accepted(web):
    """The bounds refuse the hostile, not the large: the largest text, counts and rates a real
    problem gives are read and encoded."""
    body = {"problem": {"text": "predict tool wear from the table " + "x" * 9_000,
                        "dataset": {"num_samples": 10**12, "input_shape": [3, 224, 224]},
                        "usage": {"requests_per_day": 1e9, "horizon_days": 3650}, "measurement_budget_s": 5}}
    reply = send(web, "POST", "/api/encode", body=json.dumps(body).encode())
    assert reply.status == 200, reply.body
    assert math.isfinite(json.loads(reply.body)["confidence"])
