"""The ``sustainml`` command. Every failure ends as one readable line on stderr and a non-zero exit:
2 for a bad problem, file or option; 3 when a task failed or was cancelled; 4 on a timeout;
1 for anything else."""

import argparse
import importlib
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from .exceptions import (ConfigError, InvalidProblem, LaunchError, RequestTimeout, SustainMLError,
                         TaskFailed, UnknownRegion)
from .report import to_plain

if TYPE_CHECKING:  # imported where used: each command pays only for what it needs
    from .client import Client
    from .web.server import WebConfig

EXIT_CODES = {InvalidProblem: 2, UnknownRegion: 2, ConfigError: 2, LaunchError: 2, TaskFailed: 3, RequestTimeout: 4}

DEFAULT_LAUNCH = Path("launch") / "pipeline.yaml"
EXAMPLES = Path("examples")


def _runtime_args(parser: argparse.ArgumentParser) -> None:
    from .node import add_runtime_arguments
    add_runtime_arguments(parser)


def _client(args: argparse.Namespace) -> "Client":
    from .client import Client
    from .config import load_config
    return Client(load_config(args.config, domain_id=args.domain, dds_config=args.dds_config))


# -------------------------------------------------------------------- commands
def cmd_node(args: argparse.Namespace) -> int:
    from .launch import NODE_KINDS
    if args.kind not in NODE_KINDS:
        raise ConfigError(f"unknown node {args.kind!r}; known: {', '.join(NODE_KINDS)}")
    module = importlib.import_module(NODE_KINDS[args.kind])
    argv = [f"--param={p}" for p in args.param]
    for flag in ("config", "domain", "dds_config"):
        if getattr(args, flag) is not None:
            argv += [f"--{flag.replace('_', '-')}", str(getattr(args, flag))]
    if args.name:
        os.environ["SUSTAINML_NODE_NAME"] = args.name
    return module.main(argv)


def cmd_launch(args: argparse.Namespace) -> int:
    from .launch import launch_main
    path = Path(args.file) if args.file else _default_launch()
    _export_runtime(args)
    return launch_main(path)


def _default_launch() -> Path:
    if DEFAULT_LAUNCH.is_file():
        return DEFAULT_LAUNCH
    bundled = Path(__file__).resolve().parent.parent / DEFAULT_LAUNCH
    if bundled.is_file():
        return bundled
    raise LaunchError(f"no launch file given and {DEFAULT_LAUNCH} not found; run from the project folder "
                      "or name a launch file")


def _export_runtime(args: argparse.Namespace) -> None:
    """Options given to launch/demo reach the nodes through the environment."""
    if args.domain is not None:
        os.environ["SUSTAINML_DOMAIN_ID"] = str(args.domain)
    if args.dds_config:
        os.environ["SUSTAINML_DDS_CONFIG"] = str(Path(args.dds_config).resolve())
    if args.config:
        os.environ["SUSTAINML_CONFIG"] = str(Path(args.config).resolve())


def cmd_submit(args: argparse.Namespace) -> int:
    from .problem import load_problem, task_text
    from .report import result_to_dict
    problem = load_problem(args.problem)   # malformed files fail here, before touching the bus
    _apply_measuring_options(problem, args)
    console = Console(stderr=True)
    with _client(args) as client:
        handle = client.submit(problem, problem_id=args.problem_id, timeout_s=min(30.0, args.timeout))
        if not args.json and not args.quiet:
            console.print(f"submitted task {task_text(handle.task_id)}")
        try:
            result = _watch(client, handle, args, console)
        except KeyboardInterrupt:
            # The one who asked is gone: nobody should keep measuring for this task.
            handle.cancel("the submitting command was interrupted")
            print(f"sustainml: interrupted; task {task_text(handle.task_id)} cancelled", file=sys.stderr)
            return 130
    if args.json:
        print(json.dumps(result_to_dict(result), indent=2))
    if result.state.name not in ("TASK_DONE", "TASK_RUNNING"):
        where = f" (node {result.failed_node})" if result.failed_node else ""
        print(f"sustainml: task {result.state.name[5:].lower()}{where}: {result.error}", file=sys.stderr)
        return 3
    return 0


def _apply_measuring_options(problem: Any, args: argparse.Namespace) -> None:
    """--budget, --budget-j and --reuse-only win over the problem file."""
    for flag, name, value in (("--budget", "measurement_budget_s", args.budget),
                              ("--budget-j", "measurement_budget_j", args.budget_j)):
        if value is None:
            continue
        if not value > 0:
            raise InvalidProblem(f"{flag} {value:g}: give a positive number ({'seconds of device time' if flag == '--budget' else 'joules'}"
                                 " each hardware node may spend measuring); --reuse-only measures nothing new")
        setattr(problem, name, float(value))
    if args.reuse_only:
        problem.reuse_only = True


def _watch(client: Any, handle: Any, args: argparse.Namespace, console: Console) -> Any:
    """Follow the task: progress, the first ranked answer in full, a line per refinement, the final
    answer in full. Returns the final result (or the first, with --first)."""
    from .node import TERMINAL, task_key
    from .report import measuring_line, print_result, result_table, revision_line
    show = not (args.json or args.quiet)
    out = Console()
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.percentage:>5.1f}%"),
                  TimeElapsedColumn(), console=console, transient=True, disable=args.quiet) as bar:
        row = bar.add_task("waiting", total=100)
        mine = task_key(handle.task_id)
        client.on_status(lambda s: bar.update(row, completed=s.progress, description=(s.message or s.stage)[:70])
                         if task_key(s.task_id) == mine else None)
        previous = None
        for result in handle.revisions(timeout_s=args.timeout):
            final = result.state in TERMINAL
            if args.first and not final:
                if show:
                    print_result(_as_done(result), out)
                    out.print(f"[dim]first answer; the task goes on refining: sustainml results --problem-id "
                              f"{handle.task_id.problem_id} shows the final one[/]")
                return result
            if show and final and result.state.name == "TASK_DONE":
                if previous is not None:
                    out.print(revision_line(result, previous))
                out.rule("final answer")
                print_result(result, out)
            elif show and previous is None and not final:
                out.rule(f"first answer (revision {result.revision}); refining by measurement")
                out.print(result_table(result, wide=out.width >= 110))
                out.print(measuring_line(result))
            elif show and not final:
                out.print(revision_line(result, previous))
            previous = result
            if final:
                return result
    raise AssertionError("revisions ended without a final result")  # revisions() raises on timeout


def _as_done(result: Any) -> Any:
    """A running revision shown like a result (print_result shows options only for a done one)."""
    import copy

    from . import msg
    shown = copy.copy(result)
    shown.state = msg.TaskState.TASK_DONE
    return shown


def cmd_status(args: argparse.Namespace) -> int:
    with _client(args) as client:
        nodes = client.nodes(wait_s=args.wait)
    if args.json:
        print(json.dumps([to_plain(n) for n in nodes], indent=2))
        return 0
    if not nodes:
        print(f"no node is running in DDS domain {client.bus.config.domain_id}", file=sys.stderr)
        return 1
    table = Table(title="live nodes")
    for column in ("node", "kind", "host", "pid", "state", "task", "progress", "message", "heartbeat age"):
        table.add_column(column)
    now = time.time()
    for n in nodes:
        task = f"{n.task_id.problem_id[:8]}/{n.task_id.iteration}" if n.task_id.problem_id else ""
        table.add_row(n.node, n.kind, n.host, str(n.pid), n.state.name[5:].lower(), task,
                      f"{n.progress:.0f}%", n.message[:60], f"{now - n.heartbeat_unix_s:.1f} s")
    Console().print(table)
    return 0


def cmd_topics(args: argparse.Namespace) -> int:
    from . import topics
    rows = [(t.name, t.type.__name__, t.doc) for t in topics.ALL_TOPICS]
    for s in topics.ALL_SERVICES:
        rows += [(s.request_topic.name, s.request_type.__name__, s.doc),
                 (s.reply_topic.name, s.reply_type.__name__, "")]
    if args.json:
        print(json.dumps([{"name": n, "type": t, "doc": d} for n, t, d in rows], indent=2))
        return 0
    for name, type_name, doc in rows:
        print(f"{name:42} {type_name:20} {doc}")
    return 0


def cmd_echo(args: argparse.Namespace) -> int:
    from . import topics
    from .bus import Participant
    from .config import load_config
    try:
        spec = topics.by_name(args.topic)
    except KeyError as e:
        raise ConfigError(e.args[0]) from None
    seen = threading.Semaphore(0)
    lock = threading.Lock()

    def show(message: Any) -> None:
        with lock:
            print(json.dumps(to_plain(message)), flush=True)
        seen.release()

    bus = Participant(load_config(args.config, domain_id=args.domain, dds_config=args.dds_config))
    try:
        bus.subscribe(spec, show)
        deadline = time.monotonic() + args.timeout if args.timeout else None
        count = 0
        while args.count == 0 or count < args.count:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                break
            if seen.acquire(timeout=0.5 if left is None else min(left, 0.5)):
                count += 1
    except KeyboardInterrupt:
        pass
    finally:
        bus.close()
    return 0


def cmd_results(args: argparse.Namespace) -> int:
    from .report import result_to_dict, status_name
    with _client(args) as client:
        if args.all:   # every page, newest first
            pages = list(client.history_pages(args.problem_id, args.iteration, 200, before_unix_s=args.before))
        else:
            pages = [client.history_page(args.problem_id, args.iteration, args.limit, before_unix_s=args.before)]
    results = [r for page in pages for r in page.results]
    older = pages[-1].next_before_unix_s
    if args.json:
        print(json.dumps([result_to_dict(r) for r in results], indent=2))
        return 0
    table = Table(title="results")
    for column in ("problem", "iteration", "status", "task type", "options", "best", "error"):
        table.add_column(column)
    for r in results:
        best = r.options[0].model + " on " + r.options[0].device if r.options else ""
        table.add_row(r.task_id.problem_id, str(r.task_id.iteration), status_name(r.state), r.task_type,
                      str(len(r.options)), best, r.error[:60])
    Console().print(table)
    if older:
        Console(stderr=True).print(f"[dim]older results: sustainml {args.command} --before {older!r}[/dim]")
    return 0


def cmd_cancel(args: argparse.Namespace) -> int:
    from . import msg
    with _client(args) as client:
        task_id = msg.TaskId(args.problem_id, args.iteration)
        client.cancel(task_id, args.reason)
        try:
            result = client.wait_result(task_id, timeout_s=args.timeout)
        except RequestTimeout:
            raise RequestTimeout(
                f"task {args.problem_id}/{args.iteration} did not end within {args.timeout:g} s of the request: "
                "the orchestrator cancels a task only for the client that submitted it (its log says when "
                "it refused; README 'Security')") from None
    print(f"task {args.problem_id}/{args.iteration}: {result.state.name[5:].lower()}")
    return 0


def cmd_export_onnx(args: argparse.Namespace) -> int:
    """Write a catalogue model as ONNX, in this process (the model provider serves the same over DDS)."""
    from .models.onnx_export import export_onnx
    shape = tuple(args.input_shape) if args.input_shape else None
    exported = export_onnx(args.model, input_shape=shape, batch_size=args.batch)
    out = Path(args.output or f"{args.model}.onnx")
    try:
        out.write_bytes(exported.onnx)
    except OSError as e:
        raise InvalidProblem(f"cannot write {out}: {e.strerror or e}") from None
    batch = args.batch or "N"
    print(f"wrote {out} ({len(exported.onnx) / 1e6:.3g} MB): input {exported.input_name!r} "
          f"{exported.input_dtype}[{batch}, {', '.join(map(str, exported.input_shape))}], "
          f"output {exported.output_name!r}; weights are seeded, not trained")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo
    _export_runtime(args)
    problems = args.problems or sorted(EXAMPLES.glob("*.yaml"))
    if not problems:
        raise InvalidProblem(f"no problem files given and none in {EXAMPLES}/")
    web = _web_config(args) if args.web else None
    return run_demo(args.launch or _default_launch(), problems, keep=args.keep, timeout_s=args.timeout, web=web)


def _web_config(args: argparse.Namespace) -> "WebConfig":
    from .web.server import TOKEN_ENV, WebConfig
    return WebConfig(host=args.host, port=args.port, token=os.environ.get(TOKEN_ENV, ""),
                     data_dir=Path(args.data_dir), max_upload_mb=args.max_upload_mb,
                     timeout_s=args.request_timeout)


def cmd_web(args: argparse.Namespace) -> int:
    from .web.server import serve
    config = _web_config(args)
    config.check()
    with _client(args) as client:
        serve(config, client, ready=lambda url: print(f"SustainML web UI on {url} (Ctrl-C to stop)", flush=True))
    return 0


def _web_args(parser: argparse.ArgumentParser) -> None:
    from .datasets import DEFAULT_MAX_DATASET_MB

    from .web.server import DEFAULT_PORT, TOKEN_ENV
    parser.add_argument("--host", default="127.0.0.1",
                        help=f"address to listen on (default 127.0.0.1; any other needs a token in {TOKEN_ENV})")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"TCP port (default {DEFAULT_PORT}; 0 = any free)")
    parser.add_argument("--data-dir", default=os.environ.get("SUSTAINML_DATA_DIR", "."),
                        help="where uploads go and the only folder datasets may be named from; the task encoder "
                             "must read the same folder (default: SUSTAINML_DATA_DIR or .)")
    parser.add_argument("--max-upload-mb", type=float, default=DEFAULT_MAX_DATASET_MB,
                        help=f"largest upload, MiB (default {DEFAULT_MAX_DATASET_MB:g}: the task encoder's largest dataset)")
    parser.add_argument("--request-timeout", type=float, default=15.0,
                        help="seconds the server waits for a node's answer before telling the page (default 15)")


# -------------------------------------------------------------------- parser
def _add_node_command(sub: Any, module: str) -> None:
    """Register a command that runs a node's own logic in this process (``encode``: the task encoder's,
    ``measure``: the hardware node's). It is the node's, so it lives in the node's folder with an
    ``add_parser(subparsers)``; the library names its module, as the launcher names a node's module
    (``launch.NODE_KINDS``), and never imports a node: the layers hold and a node stays replaceable."""
    importlib.import_module(module).add_parser(sub)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sustainml", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("node", help="run one node in this process")
    p.add_argument("kind", help="orchestrator, task_encoder, model_provider, hw_constraints, carbon_tracker")
    p.add_argument("--name", help="instance name (default: the kind; hw_constraints@HOST)")
    _runtime_args(p)
    p.add_argument("--param", action="append", default=[], metavar="NAME=VALUE", help="node parameter")
    p.set_defaults(func=cmd_node)

    p = sub.add_parser("launch", help="start the nodes of a launch file, each as a process; SIGINT, SIGTERM or "
                                      "SIGHUP stops them all")
    p.add_argument("file", nargs="?", help=f"launch file (default {DEFAULT_LAUNCH})")
    _runtime_args(p)
    p.set_defaults(func=cmd_launch)

    p = sub.add_parser("submit", help="submit a problem file and print the ranked options")
    p.add_argument("problem", help="problem YAML file (see examples/)")
    p.add_argument("--json", action="store_true", help="print the TaskResult as JSON")
    p.add_argument("--timeout", type=float, default=900.0, help="seconds to wait for the result")
    p.add_argument("--problem-id", default="", help="make this a new iteration of that problem")
    p.add_argument("--quiet", action="store_true", help="no progress display")
    p.add_argument("--first", action="store_true",
                   help="return the first ranked answer (estimates and stored measurements) at once; the task "
                        "goes on refining in the pipeline")
    p.add_argument("--budget", type=float, metavar="S",
                   help="seconds of device time each hardware node may spend measuring (default: the node's)")
    p.add_argument("--budget-j", type=float, metavar="J", help="joules each hardware node may spend measuring")
    p.add_argument("--reuse-only", action="store_true",
                   help="measure nothing new: answer from estimates and stored measurements")
    _runtime_args(p)
    p.set_defaults(func=cmd_submit)

    _add_node_command(sub, "sustainml_nodes.task_encoder.encode_cli")

    p = sub.add_parser("export-onnx", help="write a catalogue model as an ONNX file, for a runtime without Python")
    p.add_argument("model", help="catalogue name, e.g. resnet18")
    p.add_argument("-o", "--output", help="file to write (default MODEL.onnx)")
    p.add_argument("--batch", type=int, default=0, help="fixed batch size (default: a dynamic batch dimension)")
    p.add_argument("--input-shape", type=int, nargs="+", metavar="D",
                   help="per-sample input shape (default: the catalogue's)")
    p.set_defaults(func=cmd_export_onnx)

    p = sub.add_parser("status", help="list live nodes and their state")
    p.add_argument("--json", action="store_true")
    p.add_argument("--wait", type=float, default=2.0, help="seconds to listen for nodes")
    _runtime_args(p)
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("topics", help="list the pipeline's topics and their types")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_topics)

    p = sub.add_parser("echo", help="print the messages on a topic as JSON lines")
    p.add_argument("topic", help="e.g. sustainml/task_result or task_result")
    p.add_argument("--count", type=int, default=0, help="stop after N messages (0 = never)")
    p.add_argument("--timeout", type=float, default=0.0, help="stop after S seconds (0 = never)")
    _runtime_args(p)
    p.set_defaults(func=cmd_echo)

    p = sub.add_parser("results", aliases=["history"], help="past results from the orchestrator's store, "
                       "newest first, a page at a time")
    p.add_argument("--problem-id", default="")
    p.add_argument("--iteration", type=int, default=0)
    p.add_argument("--limit", type=int, default=20, help="results in the page (at most 200)")
    p.add_argument("--before", type=float, default=0.0, metavar="UNIX_S",
                   help="only tasks submitted before this time: the next page's start, printed under a page")
    p.add_argument("--all", action="store_true", help="every page, back to the first task")
    p.add_argument("--json", action="store_true")
    _runtime_args(p)
    p.set_defaults(func=cmd_results)

    p = sub.add_parser("cancel", help="ask the orchestrator to cancel a task (it does for the client that submitted it)")
    p.add_argument("problem_id")
    p.add_argument("iteration", type=int)
    p.add_argument("--reason", default="cancelled by the user")
    p.add_argument("--timeout", type=float, default=30.0)
    _runtime_args(p)
    p.set_defaults(func=cmd_cancel)

    p = sub.add_parser("demo", help="launch the pipeline on localhost, submit the examples, show results")
    p.add_argument("problems", nargs="*", help="problem files (default examples/*.yaml)")
    p.add_argument("--launch", help=f"launch file (default {DEFAULT_LAUNCH})")
    p.add_argument("--keep", action="store_true", help="keep the pipeline running afterwards")
    p.add_argument("--web", action="store_true",
                   help="also serve the web UI (http://127.0.0.1:8050/) and keep everything running afterwards")
    p.add_argument("--timeout", type=float, default=900.0)
    _web_args(p)
    _runtime_args(p)
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("web", help="serve the web UI for a running pipeline (a client of its orchestrator)")
    _web_args(p)
    _runtime_args(p)
    p.set_defaults(func=cmd_web)

    _add_node_command(sub, "sustainml_nodes.hw_constraints.measure_cli")
    from sustainml.codecarbon_import import add_cli as add_codecarbon_import
    add_codecarbon_import(sub)
    from sustainml.security import add_cli as add_security
    add_security(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=os.environ.get("SUSTAINML_LOG_LEVEL", "WARNING"),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        if argv is None:   # the command line (not a call from Python): a secured bus needs the secure binding
            from .config import load_config
            from .security import use_secure_binding
            use_secure_binding(load_config(getattr(args, "config", None)).security_dir, sys.argv[1:])
        return args.func(args)
    except KeyboardInterrupt:
        print("sustainml: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (``| head``): not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except SustainMLError as e:
        print(f"sustainml: {e}", file=sys.stderr)
        return next((code for kind, code in EXIT_CODES.items() if isinstance(e, kind)), 1)
    except Exception as e:  # noqa: BLE001 - a bug still ends in one line; the traceback is in the debug log
        logging.getLogger("sustainml").debug("internal error", exc_info=True)
        print(f"sustainml: internal error: {type(e).__name__}: {str(e)[:300]} (SUSTAINML_LOG_LEVEL=DEBUG shows where)",
              file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
