"""What the web UI shows, computed from messages with no DDS and no HTTP: the checks on what a page
sends, the node board, what moved between two iterations, and the CSV export. The server
(``server.py``) only routes requests to these functions, so they are tested as ordinary functions."""

from __future__ import annotations

import io
import ipaddress
import json
import math
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from .. import limits, msg
from ..datasets import TABLE_FORMATS, DataPolicy, resolve_dataset
from ..exceptions import InvalidProblem
from ..launch import NODE_KINDS
from ..node import TERMINAL
from ..problem import problem_from_dict, problem_to_dict, task_text
from ..report import status_name, to_plain, with_uncertainty

__all__ = ["EXPECTED_NODES", "UPLOAD_SUFFIXES", "MAX_JSON_DEPTH", "MAX_NUMBER", "MAX_TEXT_CHARS", "MAX_ITEMS",
           "MAX_ITERATION", "WebInputError", "parse_json", "checked_problem", "checked_problem_id",
           "checked_task_id", "checked_task_text", "checked_query_text", "checked_before", "checked_horizon_days", "host_refusal", "upload_name", "data_files", "node_view", "task_status_view", "result_event", "compare_results",
           "recommended", "history_row", "options_csv", "evidence_view"]

#: The node kinds a whole pipeline has (the launcher's built-in kinds); the page reports any of them missing as down.
EXPECTED_NODES = tuple(NODE_KINDS)
#: What may be uploaded: the table formats the task encoder profiles (an image folder cannot be uploaded).
UPLOAD_SUFFIXES = tuple(TABLE_FORMATS)
_SKIPPED_DIRS = {".git", ".venv", "venv", "node_modules", "__pycache__", ".pytest_cache"}
_LISTED_SUFFIXES = (".csv", ".tsv", ".parquet", ".pq")   # .txt uploads work too, but most .txt files are not tables
_PROBLEM_ID = re.compile(r"[0-9A-Za-z_.-]{1,64}")
#: What a number of the problem stands for, said when it is not a finite number (JSON from a script may
#: carry NaN, Infinity or 1e999, which Python reads as floats).
_NUMBER_MEANING = {
    "measurement_budget_s": "seconds of device time each hardware node may spend measuring; leave it empty "
                            "(or 0) for the node's default, 30 s",
    "measurement_budget_j": "joules each hardware node may spend measuring; 0 = no energy limit",
}


#: Bounds on what a JSON body may hold, checked before anything reads it: a problem is three levels
#: deep (``{"problem": {"intensity_overrides": [{...}]}}``), its numbers are at most the largest a
#: problem may give (and a page's JavaScript counts exactly only to 2**53), its texts at most a
#: problem's longest, its lists at most a problem's longest (``sustainml.limits``). What one field may
#: hold is the problem reader's rule (``sustainml.problem``), applied after these.
MAX_JSON_DEPTH = 8
MAX_NUMBER = limits.MAX_PROBLEM_NUMBER
MAX_TEXT_CHARS = limits.MAX_TEXT_CHARS
MAX_ITEMS = limits.MAX_LIST_ITEMS
#: The largest iteration a task id may name (the message's uint32).
MAX_ITERATION = limits.UINT32_MAX
_MAX_INT_DIGITS = 16   # a longer integer is refused before Python converts it (a 30,000-digit number is slow)


class WebInputError(InvalidProblem):
    """Raised when a request from the page is malformed; the message is shown to the user as it is."""


def parse_json(text: str) -> Any:
    """A request body read as JSON, refused (WebInputError, one line) when it is not JSON, is nested
    deeper than MAX_JSON_DEPTH, or holds a number that is not finite or not within +-MAX_NUMBER
    (NaN, Infinity, 1e999, 10**100), a text longer than MAX_TEXT_CHARS or one that is not valid
    Unicode (a lone surrogate), or a list or object of more than MAX_ITEMS."""
    try:
        value = json.loads(text, parse_constant=_refuse_constant, parse_int=_bounded_int, parse_float=_bounded_float)
    except RecursionError:
        raise WebInputError(f"the JSON body is nested too deeply; at most {MAX_JSON_DEPTH} levels") from None
    except ValueError as e:
        raise WebInputError(f"the body is not valid JSON: {e}") from None
    _check_json_shape(value)
    return value


def _refuse_constant(name: str) -> Any:
    raise WebInputError(f"{name} is not a number JSON has; give a finite number")


def _bounded_int(text: str) -> int:
    digits = text.lstrip("-")
    if len(digits) > _MAX_INT_DIGITS or abs(int(text)) > MAX_NUMBER:
        shown = text if len(text) <= 24 else f"{text[:12]}... ({len(digits)} digits)"
        raise WebInputError(f"number {shown} is out of range; numbers are at most {MAX_NUMBER:g} in size")
    return int(text)


def _bounded_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value) or abs(value) > MAX_NUMBER:
        shown = text if len(text) <= 24 else text[:12] + "..."
        raise WebInputError(f"number {shown} is out of range; numbers are finite and at most {MAX_NUMBER:g} in size")
    return value


def _check_json_shape(value: Any) -> None:
    """Walks a parsed body (iteratively: its depth is what is being checked) and raises WebInputError
    at the first part out of bounds."""
    stack: list[tuple[Any, int, str]] = [(value, 1, "the body")]
    while stack:
        item, depth, where = stack.pop()
        if isinstance(item, (dict, list)):
            if depth > MAX_JSON_DEPTH:
                raise WebInputError(f"the JSON body is nested too deeply at {where}; at most {MAX_JSON_DEPTH} levels")
            if len(item) > MAX_ITEMS:
                raise WebInputError(f"{where} has {len(item)} entries; at most {MAX_ITEMS}")
            if isinstance(item, dict):
                for key, sub in item.items():
                    _check_text(key, f"a key of {where}")
                    stack.append((sub, depth + 1, key[:40]))
            else:
                stack.extend((sub, depth + 1, f"{where}[{i}]") for i, sub in enumerate(item))
        elif isinstance(item, str):
            _check_text(item, where)


def _check_text(text: str, where: str) -> None:
    if len(text) > MAX_TEXT_CHARS:
        raise WebInputError(f"{where} is {len(text)} characters long; at most {MAX_TEXT_CHARS}")
    if "\x00" in text:
        raise WebInputError(f"{where} holds a NUL character; give plain text")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise WebInputError(f"{where} is not valid Unicode text (a lone surrogate \\u{ord(text[e.start]):04x} "
                            f"at character {e.start})") from None


def checked_problem(body: Any, data: DataPolicy) -> msg.UserInput:
    """The problem a page sent (``{"problem": {...}}``), validated as a problem file is, with its
    dataset path checked by the task encoder's own rule (inside the data folder, existing). Raises
    InvalidProblem (one line) otherwise."""
    if not isinstance(body, Mapping) or not isinstance(body.get("problem"), Mapping):
        raise WebInputError('expected a JSON object {"problem": {...}} with the problem\'s fields')
    problem = problem_from_dict(body["problem"])
    _check_finite(problem_to_dict(problem))
    try:
        problem.serialize()   # what the bus carries: a count beyond its integer type is refused here, not there
    except Exception as e:  # noqa: BLE001 - cyclonedds says which member only in its message
        raise WebInputError(f"the problem does not fit the message: {_innermost(e)}") from None
    if problem.dataset.path:
        resolve_dataset(problem.dataset.path, data)
    return problem


def _innermost(error: BaseException) -> str:
    """cyclonedds wraps a member's error in its container's ("Failed to encode member dataset, value is
    DatasetInfo(...)"): the innermost one names the field and the value."""
    while error.__cause__ is not None and "Failed to encode member" in str(error.__cause__):
        error = error.__cause__
    return str(error)[:200]


def _check_finite(values: Mapping[str, Any], prefix: str = "") -> None:
    """Raises WebInputError naming the first number of a problem (file keys) that is NaN or infinite."""
    for key, value in values.items():
        if isinstance(value, Mapping):
            _check_finite(value, f"{prefix}{key}.")
        elif isinstance(value, float) and not math.isfinite(value):
            meaning = _NUMBER_MEANING.get(prefix + key, "a number")
            raise WebInputError(f"{prefix}{key} {value!r}: expected a finite number ({meaning})")


def checked_problem_id(value: Any) -> str:
    """An earlier problem's id for a new iteration ("" = a new problem)."""
    if value in (None, ""):
        return ""
    if not isinstance(value, str) or not _PROBLEM_ID.fullmatch(value):
        raise WebInputError(f"problem_id {value!r}: expected the id of an earlier problem (letters, digits, "
                            "'.', '_' or '-', at most 64), as the history lists it")
    return value


def checked_task_id(problem_id: str, iteration: str | int, *, latest: bool = False) -> msg.TaskId:
    """A task id from a request path or query: a problem id as the store has them and an iteration from
    1 to MAX_ITERATION (0 = the latest, where ``latest``). Raises WebInputError naming what came."""
    problem_id = checked_problem_id(problem_id)
    if not problem_id:
        raise WebInputError("expected a task id PROBLEM_ID/ITERATION, as the history lists it")
    text = str(iteration)
    low = 0 if latest else 1
    if not re.fullmatch(r"[0-9]{1,10}", text) or not low <= int(text) <= MAX_ITERATION:
        shown = text if len(text) <= 24 else text[:12] + f"... ({len(text)} characters)"
        raise WebInputError(f"iteration {shown!r}: expected a whole number from {low} to {MAX_ITERATION}")
    return msg.TaskId(problem_id=problem_id, iteration=int(text))


def checked_task_text(text: str, *, latest: bool = True) -> msg.TaskId:
    """A task id as people write it (``PROBLEM_ID``, ``PROBLEM_ID/ITERATION``), checked as ``checked_task_id``."""
    cut = max(text.rfind("/"), text.rfind("#"))
    if cut < 0:
        return checked_task_id(text, 0 if latest else "", latest=latest)
    return checked_task_id(text[:cut].strip(), text[cut + 1:].strip(), latest=latest)


def checked_query_text(name: str, text: str) -> str:
    """A filter of a query string (a device, a model name): at most 200 characters of valid text."""
    if len(text) > 200 or "\x00" in text:
        raise WebInputError(f"{name} {text[:32]!r}...: expected a name of at most 200 characters")
    return text


def checked_before(text: str) -> float:
    """The history's page cursor: results submitted before this time (Units: s since 1970; "" = none)."""
    if not text:
        return 0.0
    try:
        value = float(text) if len(text) <= 32 else math.nan
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and 0.0 <= value <= 1e11):
        raise WebInputError(f"before {text[:32]!r}: expected a time in seconds since 1970 (a number from the "
                            "previous page's next link), or nothing for the newest")
    return value


def checked_horizon_days(text: str) -> float | None:
    """The serving horizon a comparison states its yearly change over ("" = none), in days."""
    if not text:
        return None
    try:
        value = float(text) if len(text) <= 32 else math.nan
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and 0.0 <= value <= 36_500.0):
        raise WebInputError(f"horizon_days {text[:32]!r}: expected a number of days from 0 to 36500")
    return value


def host_refusal(host_header: str | None, local_address: str, local_port: int, names: tuple[str, ...]) -> str:
    """Why a request's Host header is not this server ("" when it is). The server answers to the address
    the request came in on and its port, ``localhost`` and the loopback addresses when that address is
    one, and the operator's ``names`` (``name`` for any port, ``name:port`` for one). A page on another
    name that resolves here (DNS rebinding) is refused, since its requests carry that name."""
    if not host_header:
        return "the request has no Host header; give the address this server listens on"
    parsed = _host_and_port(host_header)
    if parsed is None:
        return f"Host {host_header[:80]!r} is not a host name or address with a port"
    name, port = parsed
    local = _plain_address(local_address)
    allowed = {local}
    loopback = _is_loopback(local)
    if loopback:
        allowed |= {"localhost", "127.0.0.1", "::1"}
    if name in allowed and port == local_port:
        return ""
    for entry in names:
        entry_host = _host_and_port(entry, default_port=0)
        if entry_host is not None and entry_host[0] == name and entry_host[1] in (0, port):
            return ""
    answers = sorted(allowed) + [n for n in names]
    return (f"this server does not answer to Host {host_header[:80]!r} (it answers to "
            f"{', '.join(answers)} on port {local_port}); a page on another name that points here is refused. "
            f"The operator may allow a name in SUSTAINML_WEB_HOSTS")


def _host_and_port(text: str, default_port: int = 80) -> tuple[str, int] | None:
    """(lower-case name or address without brackets, port) of a Host header, None when malformed."""
    text = text.strip().lower()
    match = re.fullmatch(r"(\[[0-9a-f:.]+\]|[0-9a-z_.-]+)(?::([0-9]{1,5}))?", text)
    if not match or len(text) > 260:
        return None
    name = match.group(1).strip("[]").rstrip(".")
    port = int(match.group(2)) if match.group(2) else default_port
    if not name or port > 65535:
        return None
    return _plain_address(name), port


def _plain_address(text: str) -> str:
    """An address in its one written form (``::ffff:10.0.0.1`` is ``10.0.0.1``); a name unchanged."""
    try:
        address = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return text.lower()
    mapped = getattr(address, "ipv4_mapped", None)
    return str(mapped or address)


def _is_loopback(text: str) -> bool:
    try:
        return ipaddress.ip_address(text).is_loopback
    except ValueError:
        return text == "localhost"


def upload_name(filename: str) -> str:
    """A safe file name for an upload: the base name only, other characters than letters, digits,
    '.', '_' and '-' replaced, one of the table suffixes the encoder reads. Raises WebInputError."""
    base = re.sub(r"[^0-9A-Za-z._-]", "_", Path(filename.replace("\\", "/")).name).lstrip(".")
    suffix = Path(base).suffix.lower()
    if not base or suffix not in UPLOAD_SUFFIXES:
        raise WebInputError(f"cannot upload {filename!r}: give a table file ({', '.join(UPLOAD_SUFFIXES)}); "
                            "an image folder stays on the server and is given by its path")
    return base[:120]


def data_files(data_dir: Path, limit: int = 200, depth: int = 4) -> list[str]:
    """Table files under ``data_dir`` a problem may point to, relative paths, sorted; hidden and
    environment folders are not entered (a virtual environment holds tens of thousands of files), nor
    folders deeper than ``depth``; at most ``limit``."""
    root = data_dir.resolve()
    found: list[str] = []
    for folder, dirs, files in os.walk(root):
        where = Path(folder).relative_to(root)
        dirs[:] = sorted(d for d in dirs if not (d in _SKIPPED_DIRS or d.startswith(".") or d.endswith(".egg-info"))
                         and len(where.parts) + 1 < depth)
        found += [(where / f).as_posix() for f in files if Path(f).suffix.lower() in _LISTED_SUFFIXES]
        if len(found) >= limit:
            break
    return sorted(found)[:limit]


def node_view(status: msg.NodeStatus) -> dict[str, Any]:
    """One node as the status strip shows it."""
    return {"node": status.node, "kind": status.kind, "host": status.host,
            "state": status.state.name.removeprefix("NODE_").lower(), "progress": status.progress,
            "message": status.message}


def task_status_view(status: msg.TaskStatus) -> dict[str, Any]:
    return {"task": task_text(status.task_id), "state": status_name(status.state), "stage": status.stage,
            "progress": status.progress, "message": status.message}


def result_event(result: msg.TaskResult) -> dict[str, Any]:
    """What the page hears of a result, each revision of it included: which task, its state, which
    revision (1 = the first ranked answer, from estimates) and whether it is the last; the page asks
    for the whole when it shows it."""
    return {"task": task_text(result.task_id), "state": status_name(result.state), "revision": int(result.revision),
            "final": result.state in TERMINAL}


# ---------------------------------------------------------------- what moved between two iterations

def compare_results(before: Mapping[str, Any], after: Mapping[str, Any],
                    horizon_days: float | None = None) -> dict[str, Any]:
    """What moved from one iteration's recommendation (its option ranked 1) to another's, in words:
    "+0.5 points of top1_accuracy costs 3.2 kg CO2e (1.6 kg a year)". Both are ``result_to_dict``
    views; ``horizon_days`` (the later iteration's serving horizon) turns the lifetime change into
    a yearly one."""
    a, b = recommended(before), recommended(after)
    if a is None or b is None:
        which = "earlier" if a is None else "later"
        return {"before": a, "after": b, "lines": [f"the {which} iteration has no option to compare"]}
    lines = []
    if a["model"] != b["model"] or a["device"] != b["device"] or a["region"] != b["region"]:
        lines.append(f"recommendation: {a['model']} on {a['device']} in {a['region']} → "
                     f"{b['model']} on {b['device']} in {b['region']}")
    co2 = b["co2_g"]["total"] - a["co2_g"]["total"]
    cost = _co2_change(co2, horizon_days)
    quality = _quality_change(a["quality"], b["quality"])
    if quality:
        lines.append(f"{quality} {'costs' if co2 > 0 else 'saves'} {cost}" if co2 else f"{quality} at no change in CO2e")
    elif co2:
        lines.append(f"same quality; {'costs' if co2 > 0 else 'saves'} {cost}")
    latency = b["latency_ms"] - a["latency_ms"]
    if abs(latency) > 1e-9:
        lines.append(f"latency {a['latency_ms']:.3g} → {b['latency_ms']:.3g} ms ({latency:+.3g} ms)")
    if not lines:
        lines.append("nothing moved: the same recommendation with the same figures")
    return {"before": brief(a), "after": brief(b), "co2_g_change": co2, "lines": lines}


def recommended(result: Mapping[str, Any]) -> dict[str, Any] | None:
    """The option ranked 1 of a ``result_to_dict`` view (None when none is ranked)."""
    ranked = [o for o in result.get("options", []) if o.get("rank")]
    return min(ranked, key=lambda o: o["rank"]) if ranked else None


def brief(option: Mapping[str, Any]) -> dict[str, Any]:
    keys = ("model", "device", "host", "region", "quality", "latency_ms", "co2_g", "sci_g_per_request")
    return {k: option[k] for k in keys}


def _quality_change(a: Mapping[str, Any], b: Mapping[str, Any]) -> str:
    if a["value"] is None or b["value"] is None or a["metric"] != b["metric"]:
        return ""
    delta = b["value"] - a["value"]
    if abs(delta) < 1e-12:
        return ""
    metric = a["metric"]
    if a["higher_is_better"] and 0 <= a["value"] <= 1 and 0 <= b["value"] <= 1:
        return f"{delta * 100:+.2g} points of {metric}"
    better = (delta > 0) == bool(a["higher_is_better"])
    return f"{metric} {a['value']:.3g} → {b['value']:.3g} ({'better' if better else 'worse'})"


def _co2_change(delta_g: float, horizon_days: float | None) -> str:
    text = with_uncertainty(abs(delta_g), 0.0) + " CO2e"
    if horizon_days and horizon_days > 0 and math.isfinite(horizon_days):
        text += f" over {horizon_days:g} days ({with_uncertainty(abs(delta_g) * 365.0 / horizon_days, 0.0)} a year)"
    return text


# ---------------------------------------------------------------- export

def options_csv(result: Mapping[str, Any]) -> str:
    """The options of a ``result_to_dict`` view as CSV, one row per option, nested figures as dotted
    columns (``co2_g.total``); lists (alternatives, equivalents) are left to the JSON export."""
    rows = [{k: v for k, v in o.items() if not isinstance(v, list)} for o in result.get("options", [])]
    frame = pd.json_normalize(rows) if rows else pd.DataFrame(columns=["rank", "model"])
    frame.insert(0, "task", f"{result['task_id']['problem_id']}/{result['task_id']['iteration']}")
    out = io.StringIO()
    frame.to_csv(out, index=False)
    return out.getvalue()


def history_row(result: Mapping[str, Any]) -> dict[str, Any]:
    """One past task as the history lists it: its state and its recommendation."""
    best = recommended(result)
    return {"task": f"{result['task_id']['problem_id']}/{result['task_id']['iteration']}",
            **result["task_id"], "status": result["status"], "revision": result["revision"],
            "final": result["final"], "error": result["error"],
            "task_type": result["task_type"], "metric": result["metric"],
            "submitted_unix_s": result["submitted_unix_s"], "options": len(result["options"]),
            "best": brief(best) if best else None}


def evidence_view(reply: msg.EvidenceReply) -> dict[str, Any]:
    """The shared evidence as the page lists it: one row per measurement, and the notes."""
    rows = []
    for record in reply.records:
        m = record.measurement
        rows.append({"task": task_text(record.task_id), "task_type": record.task_type,
                     "received_unix_s": record.received_unix_s, **to_plain(m)})
    notes = [{**to_plain(n), "task": task_text(n.task_id)} for n in reply.notes]
    return {"records": rows, "notes": notes}
