"""``sustainml web``: the browser front end, served by aiohttp. The server is one more DDS client of
the orchestrator (``sustainml.Client``): it submits problems, asks the task encoder for suggestions,
reads the store, and streams node status, task progress and results to every open page as
server-sent events. A result comes in revisions (the first ranked answer from estimates seconds after
a submit, one more per measurement that lands, the final one last): every revision is forwarded, and
the store the page reads holds the latest. The page is static files in ``static/`` with plotly.js from the installed
``plotly`` package: nothing is fetched from a network and nothing is built at install time.

Safety: it binds 127.0.0.1 unless told otherwise, and any other address needs a token the operator
sets (``SUSTAINML_WEB_TOKEN``). Every request must name this server in its Host header (the address it
listens on, or a name the operator allows in ``SUSTAINML_WEB_HOSTS``), so a page on another name that
resolves here (DNS rebinding) gets nothing; requests that change something must carry the page's own
Origin. Bodies and query parameters are bounded and checked before use (one line back, never a
traceback); uploads are size-limited and land in the data folder, the only folder a problem's dataset
may name.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import os
import re
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import plotly
from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import HttpProcessingError

from .. import msg, task_types
from ..client import MAX_RESULTS_PER_PAGE, Client
from ..config import is_loopback_host
from ..datasets import DEFAULT_MAX_DATASET_MB, DataPolicy
from ..exceptions import ConfigError, InvalidProblem, RequestTimeout
from ..node import TERMINAL
from ..problem import task_text
from ..report import encoded_to_dict, result_to_dict, status_name, to_plain
from . import views

__all__ = ["WebConfig", "create_app", "serve", "BackgroundServer", "TOKEN_ENV", "HOSTS_ENV", "DEFAULT_PORT"]

log = logging.getLogger("sustainml.web")

TOKEN_ENV = "SUSTAINML_WEB_TOKEN"
#: Host names (``name`` or ``name:port``, comma-separated) the server answers to besides the address it
#: listens on: the name people type when it listens on another address, or a reverse proxy's name.
HOSTS_ENV = "SUSTAINML_WEB_HOSTS"
TOKEN_COOKIE = "sustainml_token"
DEFAULT_PORT = 8050
STATIC = resources.files("sustainml.web") / "static"
PLOTLY_JS = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
JSON_LIMIT_BYTES = 1024 * 1024
_KEEPALIVE_S = 15.0
_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    # plotly sets inline styles on the elements it draws; no script from anywhere else runs.
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
                               "img-src 'self' data: blob:; connect-src 'self'; frame-ancestors 'none'",
}


def allowed_hosts_from_env() -> tuple[str, ...]:
    """The host names of ``SUSTAINML_WEB_HOSTS`` ("" = none)."""
    return tuple(name.strip().lower() for name in os.environ.get(HOSTS_ENV, "").split(",") if name.strip())


@dataclass
class WebConfig:
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    token: str = ""                  # required for any address but loopback; from SUSTAINML_WEB_TOKEN
    #: names the Host header may carry besides the address the request came in on (and localhost on
    #: loopback): ``name`` for any port, ``name:port`` for one; from SUSTAINML_WEB_HOSTS
    allowed_hosts: tuple[str, ...] = field(default_factory=allowed_hosts_from_env)
    data_dir: Path = Path(".")       # the only folder datasets are read from and uploaded to
    max_upload_mb: float = DEFAULT_MAX_DATASET_MB   # the task encoder's default largest dataset
    timeout_s: float = 15.0          # for each request to a node

    def check(self) -> None:
        """Raises ConfigError when the server may not start as configured."""
        if not is_loopback_host(self.host) and not self.token:
            raise ConfigError(f"binding to {self.host} exposes the pipeline beyond this machine: set a token "
                              f"in {TOKEN_ENV} (e.g. `export {TOKEN_ENV}=$(openssl rand -hex 16)`) and open "
                              f"the page as http://HOST:PORT/?token=THE_TOKEN, or bind 127.0.0.1")
        if self.token and len(self.token) < 16:
            raise ConfigError(f"{TOKEN_ENV} is too short ({len(self.token)} characters); use at least 16 "
                              "random characters")
        if not self.data_dir.is_dir():
            raise ConfigError(f"data folder {self.data_dir} does not exist; create it or give --data-dir")
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"port {self.port} is not a TCP port (0-65535)")
        for name in self.allowed_hosts:
            if not re.fullmatch(r"(\[[0-9a-f:.]+\]|[0-9a-z_.-]+)(:[0-9]{1,5})?", name):
                raise ConfigError(f"{HOSTS_ENV}: {name!r} is not a host name (give names such as "
                                  "sustainml.lab.example or sustainml.lab.example:8050, comma-separated)")



class EventHub:
    """What every open page hears: node status, task progress, results (each revision, not only the
    final one), from the client's own subscriptions. Client callbacks arrive on DDS threads and are handed to the event loop; each page
    has its own queue."""

    def __init__(self, loop: asyncio.AbstractEventLoop, client: Client) -> None:
        self.loop = loop
        self.client = client
        self.queues: set[asyncio.Queue[tuple[str, Any]]] = set()
        client.on_node(lambda s: self._from_dds(*(("node", views.node_view(s)) if isinstance(s, msg.NodeStatus)
                                                  else ("node_gone", {"node": s.key.node}))))
        client.on_status(lambda s: self._from_dds("task", views.task_status_view(s)))
        client.on_result(lambda r: self._from_dds("result", views.result_event(r)))

    def _from_dds(self, kind: str, data: Any) -> None:
        try:
            self.loop.call_soon_threadsafe(self._send, kind, data)
        except RuntimeError:          # the server stopped; the client lives on (sustainml demo --web)
            pass

    def _send(self, kind: str, data: Any) -> None:
        for q in list(self.queues):
            q.put_nowait((kind, data))

    def board(self) -> dict[str, Any]:
        """The live nodes, and the node kinds a whole pipeline has (the page reports a kind with no live
        node as down)."""
        return {"nodes": [views.node_view(s) for s in self.client.nodes(wait_s=0.0)],
                "expected": list(views.EXPECTED_NODES)}


# ---------------------------------------------------------------- the application

class WebApp:
    """Request handlers; blocking DDS calls run in worker threads."""

    def __init__(self, config: WebConfig, client: Client, hub: EventHub) -> None:
        self.config = config
        self.client = client
        self.hub = hub
        self.data_dir = config.data_dir.resolve()
        self.data_policy = DataPolicy.from_params(str(self.data_dir), config.max_upload_mb)
        self.page = (STATIC / "index.html").read_text()

    async def _dds(self, call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return await asyncio.to_thread(call, *args, **kwargs)

    # ---- pages
    async def index(self, request: web.Request) -> web.StreamResponse:
        return web.Response(text=self.page, content_type="text/html")

    async def plotly_js(self, request: web.Request) -> web.StreamResponse:
        return web.FileResponse(PLOTLY_JS, headers={"Cache-Control": "max-age=86400"})

    # ---- problems
    async def encode(self, request: web.Request) -> web.StreamResponse:
        problem = views.checked_problem(await _json(request), self.data_policy)
        task = await self._dds(self.client.encode, problem, timeout_s=self.config.timeout_s)
        return web.json_response(encoded_to_dict(task))

    async def submit(self, request: web.Request) -> web.StreamResponse:
        body = await _json(request)
        problem_id = views.checked_problem_id(body.get("problem_id") if isinstance(body, dict) else None)
        problem = views.checked_problem(body, self.data_policy)
        handle = await self._dds(self.client.submit, problem, problem_id=problem_id,
                                 timeout_s=self.config.timeout_s)
        task_id = handle.task_id
        return web.json_response({"problem_id": task_id.problem_id, "iteration": int(task_id.iteration),
                                  "task": task_text(task_id)})

    async def cancel(self, request: web.Request) -> web.StreamResponse:
        """Cancel a task the store knows and that has not ended (404 and 409 otherwise)."""
        task_id = _task_id(request)
        result = await self._stored(task_id)
        if result.state in TERMINAL:
            raise web.HTTPConflict(text=f"task {task_text(task_id)} has already ended "
                                        f"({status_name(result.state)}); there is nothing to cancel")
        await self._dds(self.client.cancel, task_id, "cancelled from the web page")
        return web.json_response({"cancelled": task_text(task_id)})

    async def task_types(self, request: web.Request) -> web.StreamResponse:
        """The task types of ``sustainml.task_types``, the one list the encoder and the model provider
        use too (no need to wait for the model provider)."""
        return web.json_response(sorted(task_types.TASK_TYPES))

    # ---- results and history
    async def _stored(self, task_id: msg.TaskId) -> msg.TaskResult:
        """The stored result of one task (iteration 0 = the latest): its latest revision while it runs,
        the final one after. HTTPNotFound when the store has no such task."""
        try:
            results = await self._dds(self.client.history, task_id.problem_id, int(task_id.iteration), 1,
                                      timeout_s=self.config.timeout_s)
        except InvalidProblem:   # the orchestrator's "no task with problem id ...": the id was checked here
            results = []
        if not results:
            raise web.HTTPNotFound(text=f"no task {task_text(task_id)} in the store")
        return results[0]

    async def _result(self, task_id: msg.TaskId) -> dict[str, Any]:
        """The stored result of one task as the JSON view."""
        return result_to_dict(await self._stored(task_id))

    async def result(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(await self._result(_task_id(request)))

    async def export(self, request: web.Request) -> web.StreamResponse:
        result = await self._result(_task_id(request))
        task = f"{result['task_id']['problem_id']}-{result['task_id']['iteration']}"
        fmt = request.match_info["format"]
        if fmt == "csv":
            body, kind = views.options_csv(result), "text/csv"
        else:
            body, kind = json.dumps(result, indent=2), "application/json"
        return web.Response(text=body, content_type=kind,
                            headers={"Content-Disposition": f'attachment; filename="sustainml-{task}.{fmt}"'})

    async def history(self, request: web.Request) -> web.StreamResponse:
        """One page of past tasks, newest first: ``limit`` of them submitted before ``before`` (a time,
        absent = the newest). When older ones remain, the ``Link`` header names the next page
        (``rel="next"``), as the store cut it (tasks of one instant are never split between pages)."""
        problem_id = views.checked_problem_id(request.query.get("problem_id", ""))
        limit = _int_query(request, "limit", 50, 1, MAX_RESULTS_PER_PAGE)
        before = views.checked_before(request.query.get("before", ""))
        page = await self._dds(self.client.history_page, problem_id, 0, limit, before_unix_s=before,
                               timeout_s=self.config.timeout_s)
        response = web.json_response([views.history_row(result_to_dict(r)) for r in page.results])
        if page.next_before_unix_s:
            query = {**({"problem_id": problem_id} if problem_id else {}), "limit": str(limit),
                     "before": repr(float(page.next_before_unix_s))}
            response.headers["Link"] = f'<{request.url.with_query(query).path_qs}>; rel="next"'
        return response

    async def compare(self, request: web.Request) -> web.StreamResponse:
        ids = [views.checked_task_text(request.query.get(name, "")) for name in ("a", "b")]
        horizon_days = views.checked_horizon_days(request.query.get("horizon_days", ""))
        a, b = [await self._result(task_id) for task_id in ids]
        return web.json_response({"a": a, "b": b, "moved": views.compare_results(a, b, horizon_days)})

    # ---- live
    async def nodes(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(self.hub.board())

    async def events(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await response.prepare(request)
        q: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self.hub.queues.add(q)
        try:
            await _sse(response, "board", self.hub.board())
            while True:
                try:
                    kind, data = await asyncio.wait_for(q.get(), timeout=_KEEPALIVE_S)
                except asyncio.TimeoutError:
                    await response.write(b": keep-alive\n\n")
                    continue
                await _sse(response, kind, data)
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            self.hub.queues.discard(q)
        return response

    # ---- data
    async def data(self, request: web.Request) -> web.StreamResponse:
        files = await asyncio.to_thread(views.data_files, self.data_dir)
        return web.json_response({"folder": str(self.data_dir), "files": files,
                                  "max_upload_mb": self.config.max_upload_mb})

    async def upload(self, request: web.Request) -> web.StreamResponse:
        limit = int(self.config.max_upload_mb * 1024 * 1024)
        if request.content_length and request.content_length > limit + 64 * 1024:
            raise _too_large(self.config.max_upload_mb)
        try:
            reader = await request.multipart()
            part = await reader.next()
        except (AssertionError, ValueError, LookupError):   # aiohttp's words for a malformed form
            raise views.WebInputError("expected a multipart form with a field 'file'") from None
        if not isinstance(part, BodyPartReader) or part.name != "file" or not part.filename:
            raise views.WebInputError("expected a multipart form with a field 'file' holding the table")
        name = views.upload_name(part.filename)
        folder = self.data_dir / "uploads"
        folder.mkdir(exist_ok=True)
        target = _free_name(folder / name)
        partial = target.with_name(target.name + ".part")
        size = 0
        try:
            with partial.open("wb") as out:
                while chunk := await part.read_chunk(256 * 1024):
                    size += len(chunk)
                    if size > limit:
                        raise _too_large(self.config.max_upload_mb)
                    out.write(chunk)
            if size == 0:
                raise views.WebInputError(f"{part.filename!r} is empty; give a file with a header row and data")
            partial.rename(target)
        finally:
            partial.unlink(missing_ok=True)
        return web.json_response({"path": target.relative_to(self.data_dir).as_posix(), "size_bytes": size})

    # ---- shared evidence
    async def evidence(self, request: web.Request) -> web.StreamResponse:
        filters = {k: views.checked_query_text(k, request.query.get(k, "")) for k in ("task_type", "device", "model", "host")}
        limit = _int_query(request, "limit", 500, 1, 5000)
        reply = await self._dds(self.client.evidence, **filters, limit=limit, timeout_s=self.config.timeout_s)
        return web.json_response(views.evidence_view(reply))

    async def add_note(self, request: web.Request) -> web.StreamResponse:
        body = await _json(request)
        if not isinstance(body, dict):
            raise views.WebInputError("expected a JSON object with task, model, device, host, text")
        fields = {k: body.get(k, "") for k in ("model", "device", "host", "region", "text", "author")}
        if not all(isinstance(v, str) for v in fields.values()):
            raise views.WebInputError("task, model, device, host, region, text and author must be text")
        task = body.get("task", "")
        if not isinstance(task, str):
            raise views.WebInputError(f"task {task!r}: expected a task id PROBLEM_ID/ITERATION, as the history lists it")
        task_id = views.checked_task_text(task, latest=False)
        note = await self._dds(self.client.add_note, task_id, **fields, timeout_s=self.config.timeout_s)
        return web.json_response({**to_plain(note), "task": task_text(task_id)})


async def _json(request: web.Request) -> Any:
    if request.content_type != "application/json":
        raise views.WebInputError(f"expected a JSON body (Content-Type application/json), got "
                                  f"{request.content_type or 'none'}")
    raw = await request.read()   # at most client_max_size (JSON_LIMIT_BYTES), else 413
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise views.WebInputError(f"the body is not UTF-8 text (byte {e.start}); send JSON") from None
    return views.parse_json(text)


def _task_id(request: web.Request) -> msg.TaskId:
    return views.checked_task_id(request.match_info["problem_id"], request.match_info["iteration"])


def _int_query(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    text = request.query.get(name, "")
    if not text:
        return default
    if not re.fullmatch(r"[0-9]{1,9}", text) or not low <= int(text) <= high:
        raise views.WebInputError(f"{name} {text[:32]!r}: expected a whole number from {low} to {high}")
    return int(text)


def _free_name(path: Path) -> Path:
    """``path``, or ``name-1.csv``, ``name-2.csv``... when it exists: an upload never replaces a file."""
    candidate, n = path, 0
    while candidate.exists() or candidate.with_name(candidate.name + ".part").exists():
        n += 1
        candidate = path.with_name(f"{path.stem}-{n}{path.suffix}")
    return candidate


def _too_large(max_mb: float) -> web.HTTPException:
    return web.HTTPRequestEntityTooLarge(max_size=int(max_mb * 1024 * 1024), actual_size=0,
                                         text=f"the upload is larger than the {max_mb:g} MiB limit of this server")


async def _sse(response: web.StreamResponse, kind: str, data: Any) -> None:
    await response.write(f"event: {kind}\ndata: {json.dumps(data)}\n\n".encode())


# ---------------------------------------------------------------- middleware: token, origin, errors

def _guard(config: WebConfig) -> Callable[..., Awaitable[web.StreamResponse]]:
    @web.middleware
    async def guard(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                    ) -> web.StreamResponse:
        refusal = _host_refusal(request, config)
        if refusal:
            return _error(421, refusal)
        set_cookie = False
        if config.token:
            given = request.query.get("token") or request.cookies.get(TOKEN_COOKIE, "")
            bearer = request.headers.get("Authorization", "")
            if bearer.startswith("Bearer "):
                given = bearer[7:]
            if not hmac.compare_digest(given.encode(), config.token.encode()):
                return _error(401, "this server needs its operator's token: open the page as "
                                   "http://HOST:PORT/?token=THE_TOKEN")
            set_cookie = "token" in request.query
        if request.method not in ("GET", "HEAD") and not _same_origin(request):
            origin = request.headers.get("Origin")
            return _error(403, "requests that change something must come from this server's own page "
                               f"(Origin {request.scheme}://{request.host}); got "
                               + ("no Origin" if origin is None else _one_line(repr(origin[:80]))))
        try:
            response = await handler(request)
        except InvalidProblem as e:          # WebInputError included: the user's input, one line
            response = _error(400, _one_line(str(e)))
        except RequestTimeout as e:
            response = _error(503, f"{e}; is the pipeline running? (the node board at the top says which "
                                   "nodes are up)")
        except web.HTTPException as e:
            if e.status < 400:
                raise
            response = _error(e.status, e.text or e.reason)
        except (asyncio.CancelledError, ConnectionError):
            raise
        except Exception:  # noqa: BLE001 - the operator gets the traceback, the page one line
            log.exception("%s %s failed", request.method, request.path[:200])
            response = _error(500, "the server failed on this request; its log says why")
        for name, value in _HEADERS.items():
            response.headers.setdefault(name, value)
        if set_cookie:
            response.set_cookie(TOKEN_COOKIE, config.token, httponly=True, samesite="Strict")
        return response
    return guard


def _host_refusal(request: web.Request, config: WebConfig) -> str:
    """Why the request's Host header is not this server ("" when it is): see views.host_refusal."""
    sockname = request.transport.get_extra_info("sockname") if request.transport else None
    if not sockname:
        return "the connection has closed"
    return views.host_refusal(request.headers.get("Host"), str(sockname[0]), int(sockname[1]), config.allowed_hosts)


def _same_origin(request: web.Request) -> bool:
    """Whether a request that changes something comes from this server's own page: a browser sends its
    page's Origin with every such request; a script must send it too (``Origin: http://HOST:PORT``),
    which a page on another site cannot forge. The Host header was checked before."""
    origin = request.headers.get("Origin", "")
    return bool(origin) and origin.lower() == f"{request.scheme}://{request.host}".lower()


def _one_line(text: str) -> str:
    return " ".join(text.split())[:1000]


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


class _MalformedRequestLine(logging.Filter):
    """aiohttp answers a request that is not HTTP (no Host header, a broken header line) with a 400 of
    one line, and logs the parser's traceback: a hostile client would fill the operator's log with
    them. Such a record becomes one line; any other error keeps its traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, HttpProcessingError):
            record.msg, record.args = "refused a malformed request from %s: %s", (
                record.args[0] if isinstance(record.args, tuple) and record.args else "?",
                _one_line(str(error.message)))
            record.exc_info, record.exc_text, record.levelno, record.levelname = None, None, logging.INFO, "INFO"
        return True


def create_app(config: WebConfig, client: Client) -> web.Application:
    """The aiohttp application; ``client`` is the DDS connection it serves from (not closed by it)."""
    server_log = logging.getLogger("aiohttp.server")
    if not any(isinstance(f, _MalformedRequestLine) for f in server_log.filters):
        server_log.addFilter(_MalformedRequestLine())
    app = web.Application(middlewares=[_guard(config)], client_max_size=JSON_LIMIT_BYTES)
    hub = EventHub(asyncio.get_running_loop(), client)
    handlers = WebApp(config, client, hub)
    # The upload route reads its body as a stream under its own limit, not client_max_size.
    app.add_routes([
        web.get("/", handlers.index),
        web.get("/vendor/plotly.min.js", handlers.plotly_js),
        web.post("/api/encode", handlers.encode),
        web.post("/api/submit", handlers.submit),
        web.post("/api/tasks/{problem_id}/{iteration:[0-9]+}/cancel", handlers.cancel),
        web.get("/api/tasks/{problem_id}/{iteration:[0-9]+}", handlers.result),
        web.get("/api/tasks/{problem_id}/{iteration:[0-9]+}/export.{format:(csv|json)}", handlers.export),
        web.get("/api/task_types", handlers.task_types),
        web.get("/api/history", handlers.history),
        web.get("/api/compare", handlers.compare),
        web.get("/api/nodes", handlers.nodes),
        web.get("/api/events", handlers.events),
        web.get("/api/data", handlers.data),
        web.post("/api/upload", handlers.upload),
        web.get("/api/evidence", handlers.evidence),
        web.post("/api/notes", handlers.add_note),
    ])
    # Static files: aiohttp's static route refuses any path that leaves the folder (.., symlinks).
    app.router.add_static("/static/", Path(str(STATIC)), follow_symlinks=False)
    return app


async def _run(config: WebConfig, client: Client, ready: Callable[[str], None] | None,
               stop: asyncio.Event) -> None:
    app = create_app(config, client)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
    await runner.setup()
    try:
        site = web.TCPSite(runner, config.host, config.port)
        try:
            await site.start()
        except OSError as e:
            raise ConfigError(f"cannot listen on {config.host}:{config.port}: {e.strerror or e}; "
                              "give another --port") from None
        host, port = runner.addresses[0][:2]
        if ready:
            ready(f"http://{'[' + host + ']' if ':' in host else host}:{port}/")
        await stop.wait()
    finally:
        await runner.cleanup()


def serve(config: WebConfig, client: Client, *, ready: Callable[[str], None] | None = None) -> None:
    """Serve from ``client``'s DDS connection until interrupted. ``ready(url)`` is called once it listens."""
    config.check()

    async def main() -> None:
        await _run(config, client, ready, asyncio.Event())
    asyncio.run(main())


class BackgroundServer:
    """The web UI served from a thread of this process (``sustainml demo --web``); ``stop()`` ends it."""

    def __init__(self, config: WebConfig, client: Client) -> None:
        config.check()
        self.url = ""
        self._listening = threading.Event()
        self._error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._main, args=(config, client), name="sustainml-web", daemon=True)

    def start(self, timeout_s: float = 10.0) -> str:
        self._thread.start()
        if not self._listening.wait(timeout_s) and self._error is None:
            raise ConfigError(f"the web server did not start within {timeout_s:g} s")
        if self._error is not None:
            raise self._error
        return self.url

    def _main(self, config: WebConfig, client: Client) -> None:
        async def main() -> None:
            self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
            await _run(config, client, self._ready, self._stop)
        try:
            asyncio.run(main())
        except BaseException as e:  # noqa: BLE001 - handed to start()
            self._error = e
            self._listening.set()

    def _ready(self, url: str) -> None:
        self.url = url
        self._listening.set()

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=10)
