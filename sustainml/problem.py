"""Problem files: YAML (or a dict) in, a ``UserInput`` message out, with one readable line for
anything malformed. The keys mirror the IDL's ``UserInput`` fields; README documents each."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from . import limits, msg
from .exceptions import InvalidProblem

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

__all__ = ["load_problem", "parse_problem_yaml", "problem_from_dict", "problem_to_dict", "parse_task_id", "task_text", "PROBLEM_KEYS"]

# file key -> UserInput field (short names for the fields people write most)
_ALIASES = {"task_type": "task_type_hint", "modality": "modality_hint",
            "hardware": "allowed_hardware", "models": "candidate_models"}
_NESTED: dict[str, type[DataclassInstance]] = {
    "dataset": msg.DatasetInfo, "constraints": msg.TaskConstraints, "usage": msg.UsageProfile}
_STRUCT_LISTS: dict[str, type[DataclassInstance]] = {"intensity_overrides": msg.RegionFigure}
_SKIP = {"task_id"}
_INT_LISTS = {"dataset.input_shape"}
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)   # the same safe types, parsed in C when it can
PROBLEM_KEYS = sorted(
    (set(msg.UserInput.__dataclass_fields__) - _SKIP - set(_ALIASES.values())) | set(_ALIASES) | {"problem_id"})


def load_problem(path: str | Path) -> msg.UserInput:
    """The problem in a YAML file. Raises ``InvalidProblem`` with one line, naming the file, for a file
    that is missing, unreadable, larger than ``limits.MAX_PROBLEM_FILE_BYTES``, not YAML, nested deeper
    than ``limits.MAX_NESTING_DEPTH`` (checked on the parser's events, before anything recursive
    builds it), or not a valid problem (``problem_from_dict``)."""
    path = Path(path)
    try:
        with path.open("rb") as f:
            raw = f.read(limits.MAX_PROBLEM_FILE_BYTES + 1)
        text = raw.decode("utf-8")
    except FileNotFoundError:
        raise InvalidProblem(f"problem file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as e:
        raise InvalidProblem(f"cannot read problem file {path}: {e}") from None
    if len(raw) > limits.MAX_PROBLEM_FILE_BYTES:
        raise InvalidProblem(f"{path}: a problem file of at most {limits.MAX_PROBLEM_FILE_BYTES:,} bytes expected, "
                             "a larger one came")
    try:
        data = parse_problem_yaml(text)
    except InvalidProblem as e:
        raise InvalidProblem(f"{path}: {e}") from None
    try:
        return problem_from_dict(data)
    except InvalidProblem as e:
        raise InvalidProblem(f"{path}: {e}") from None


def parse_problem_yaml(text: str) -> Mapping[str, Any]:
    """The mapping a problem's YAML text holds; ``InvalidProblem`` (one line) for anything else.
    Safe YAML only (no Python objects); the nesting is checked on the parser's event stream, which
    is iterative, before the recursive composer builds anything."""
    try:
        _check_yaml_depth(text)
        data = yaml.load(text, Loader=_LOADER)  # noqa: S506 - a safe loader (libyaml's when there is one)
    except yaml.YAMLError as e:
        if "nesting depth" in str(e):   # libyaml's own limit, met while it reads ahead
            raise InvalidProblem(f"nesting at most {limits.MAX_NESTING_DEPTH} deep expected, deeper came") from None
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        problem = " ".join(str(getattr(e, "problem", None) or e).split())
        raise InvalidProblem(f"not valid YAML{where}: {problem[:200]}") from None
    except RecursionError:   # the depth check makes this unreachable; kept as the last line of defence
        raise InvalidProblem(f"nesting at most {limits.MAX_NESTING_DEPTH} deep expected, deeper came") from None
    if not isinstance(data, Mapping):
        raise InvalidProblem(f"expected a mapping of problem fields at the top level, got {type(data).__name__}")
    return data


def _check_yaml_depth(text: str) -> None:
    depth = 0
    for event in yaml.parse(text, Loader=_LOADER):
        if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            depth += 1
            if depth > limits.MAX_NESTING_DEPTH:
                where = f" (line {event.start_mark.line + 1})" if event.start_mark else ""
                raise InvalidProblem(f"nesting at most {limits.MAX_NESTING_DEPTH} deep expected, deeper came{where}")
        elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            depth -= 1


def problem_from_dict(data: Mapping[str, Any]) -> msg.UserInput:
    """A UserInput from a plain mapping; unknown keys and wrong types are errors, not ignored, and so
    are values beyond ``sustainml.limits`` (long texts and lists, huge or non-finite numbers, deep
    nesting): each an ``InvalidProblem`` of one line."""
    if not isinstance(data, Mapping):
        raise InvalidProblem(f"expected a mapping of problem fields, got {limits.shorten(data)}")
    too_much = limits.check_nesting(data)
    if too_much:
        raise InvalidProblem(too_much)
    problem = msg.UserInput()
    for key, value in data.items():
        if key == "problem_id":
            problem.task_id.problem_id = _typed("problem_id", value, str)
            continue
        name = _ALIASES.get(key, key) if isinstance(key, str) else key
        if not isinstance(name, str) or name not in msg.UserInput.__dataclass_fields__ or name in _SKIP:
            raise InvalidProblem(f"unknown key {limits.shorten(key)}; the keys are: {', '.join(PROBLEM_KEYS)}")
        if name in _NESTED:
            setattr(problem, name, _nested(key, value, _NESTED[name]))
        elif name in _STRUCT_LISTS:
            setattr(problem, name, _struct_list(key, value, _STRUCT_LISTS[name]))
        else:
            setattr(problem, name, _typed(key, value, type(getattr(problem, name))))
    if not problem.text and not problem.task_type_hint:
        raise InvalidProblem("give 'text' (the goal in your words) or 'task_type'")
    return problem


def problem_to_dict(problem: msg.UserInput) -> dict[str, Any]:
    """A UserInput as a problem file says it: the short key names, only what was given (no empty text,
    zero or empty list), no task id. ``problem_from_dict`` reads it back to an equal problem."""
    short = {field: alias for alias, field in _ALIASES.items()}
    data: dict[str, Any] = {}
    for name in msg.UserInput.__dataclass_fields__:
        value = getattr(problem, name)
        if name in _SKIP:
            continue
        if name in _NESTED:
            value = {k: v for k, v in vars(value).items() if _given(v)}
        elif name in _STRUCT_LISTS:
            value = [dict(vars(item)) for item in value]
        elif isinstance(value, list):
            value = list(value)
        if _given(value):
            data[short.get(name, name)] = value
    return data


def _given(value: Any) -> bool:
    return value not in ("", 0, None, [], {})


def _nested(key: str, value: Any, cls: type[DataclassInstance]) -> Any:
    if not isinstance(value, Mapping):
        raise InvalidProblem(f"{key!r} must be a mapping, got {limits.shorten(value)}")
    obj = cls()
    for sub, sub_value in value.items():
        if not isinstance(sub, str) or sub not in cls.__dataclass_fields__:
            raise InvalidProblem(f"unknown key {key}.{limits.shorten(sub)}; the keys of {key} are: "
                                 f"{', '.join(cls.__dataclass_fields__)}")
        setattr(obj, sub, _typed(f"{key}.{sub}", sub_value, type(getattr(obj, sub))))
    return obj


def _struct_list(key: str, value: Any, cls: type[DataclassInstance]) -> list[Any]:
    """A list of mappings, each one ``cls``; a single mapping is a list of one."""
    items = [value] if isinstance(value, Mapping) else value
    if not isinstance(items, list):
        raise InvalidProblem(f"{key!r} must be a list of mappings with keys {', '.join(cls.__dataclass_fields__)}, "
                             f"got {limits.shorten(value)}")
    if len(items) > limits.MAX_LIST_ITEMS:
        raise InvalidProblem(f"{key!r}: at most {limits.MAX_LIST_ITEMS:,} items expected, {len(items):,} came")
    return [_nested(f"{key}[{i}]", item, cls) for i, item in enumerate(items)]


#: Text fields with more room than ``limits.MAX_NAME_CHARS``.
_TEXT_LIMITS = {"text": limits.MAX_TEXT_CHARS, "dataset.description": limits.MAX_TEXT_CHARS,
                "dataset.path": limits.MAX_PATH_CHARS, "problem_id": limits.MAX_ID_CHARS}
#: The largest value of each whole-number field: its IDL width, or less where a larger one is a typo.
_INT_LIMITS = {"dataset.num_samples": limits.MAX_COUNT}


def _typed(key: str, value: Any, kind: type) -> Any:
    if kind is list:
        items = [value] if isinstance(value, (str, int)) else value
        if not isinstance(items, list):
            raise InvalidProblem(f"{key!r} must be a list, got {limits.shorten(value)}")
        if len(items) > limits.MAX_LIST_ITEMS:
            raise InvalidProblem(f"{key!r}: at most {limits.MAX_LIST_ITEMS:,} items expected, {len(items):,} came")
        if key in _INT_LISTS:
            return [_typed(f"{key}[{i}]", v, int) for i, v in enumerate(items)]
        if not all(isinstance(v, (str, int)) and not isinstance(v, bool) for v in items):
            raise InvalidProblem(f"{key!r} must be a list of names, got {limits.shorten(value)}")
        return [_typed(f"{key}[{i}]", v, str) for i, v in enumerate(items)]
    if kind is str:
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise InvalidProblem(f"{key!r} must be text, got {limits.shorten(value)}")
        if isinstance(value, int) and value.bit_length() > 64:
            raise InvalidProblem(f"{key!r} must be text, got {limits.shorten(value)}")
        text = value if isinstance(value, str) else str(value)
        too_long = limits.check_text(key, text, _TEXT_LIMITS.get(key.split("[")[0], limits.MAX_NAME_CHARS))
        if too_long:
            raise InvalidProblem(too_long)
        return text
    if kind is bool:
        if not isinstance(value, bool):
            raise InvalidProblem(f"{key!r} must be true or false, got {limits.shorten(value)}")
        return value
    if kind in (int, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise InvalidProblem(f"{key!r} must be a number, got {limits.shorten(value)}")
        if isinstance(value, float) and not math.isfinite(value):
            raise InvalidProblem(f"{key!r} must be a finite number, got {value}")
        if value < 0:
            raise InvalidProblem(f"{key!r} must not be negative, got {limits.shorten(value)}")
        if kind is int:
            high = _INT_LIMITS.get(key.split("[")[0], limits.UINT32_MAX)
            if value > high:
                raise InvalidProblem(f"{key!r} is too large: at most {high:,} expected, got {limits.shorten(value)}")
            if value != int(value):
                raise InvalidProblem(f"{key!r} must be a whole number, got {value!r}")
            return int(value)
        if value > limits.MAX_PROBLEM_NUMBER:
            raise InvalidProblem(f"{key!r} is too large: at most {limits.MAX_PROBLEM_NUMBER:g} expected, "
                                 f"got {limits.shorten(value)}")
        return float(value)
    raise InvalidProblem(f"{key!r}: unsupported value {limits.shorten(value)}")


def parse_task_id(text: str | msg.TaskId) -> msg.TaskId:
    """A task id as people write it: ``PROBLEM_ID``, or with its iteration as ``sustainml submit``
    prints it, ``PROBLEM_ID/ITERATION`` (``PROBLEM_ID#ITERATION`` too). No iteration = 0, which
    the orchestrator reads as the latest. Raises ``InvalidProblem`` naming the accepted forms."""
    if isinstance(text, msg.TaskId):
        return msg.TaskId(problem_id=text.problem_id, iteration=text.iteration)
    body = str(text).strip()
    cut = max(body.rfind("/"), body.rfind("#"))
    problem_id, iteration = (body[:cut].strip(), body[cut + 1:].strip()) if cut >= 0 else (body, "")
    if not problem_id or (cut >= 0 and not (iteration.isdigit() and int(iteration) >= 1)):
        raise InvalidProblem(f"task id {str(text)!r}: expected PROBLEM_ID or PROBLEM_ID/ITERATION with an "
                             "iteration of 1 or more, as `sustainml submit` prints it (e.g. 3f2a9c/2)")
    return msg.TaskId(problem_id=problem_id, iteration=int(iteration) if iteration else 0)


def task_text(task_id: msg.TaskId) -> str:
    """``PROBLEM_ID/ITERATION`` (just the problem id for iteration 0), as the CLI prints task ids."""
    return task_id.problem_id + (f"/{task_id.iteration}" if task_id.iteration else "")
