"""Problem files: YAML (or a dict) in, a ``UserInput`` message out, with one readable line for
anything malformed. The keys mirror the IDL's ``UserInput`` fields; README documents each."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from . import msg
from .exceptions import InvalidProblem

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

__all__ = ["load_problem", "problem_from_dict", "problem_to_dict", "parse_task_id", "task_text", "PROBLEM_KEYS"]

# file key -> UserInput field (short names for the fields people write most)
_ALIASES = {"task_type": "task_type_hint", "modality": "modality_hint",
            "hardware": "allowed_hardware", "models": "candidate_models"}
_NESTED: dict[str, type[DataclassInstance]] = {
    "dataset": msg.DatasetInfo, "constraints": msg.TaskConstraints, "usage": msg.UsageProfile}
_STRUCT_LISTS: dict[str, type[DataclassInstance]] = {"intensity_overrides": msg.RegionFigure}
_SKIP = {"task_id"}
_INT_LISTS = {"dataset.input_shape"}
PROBLEM_KEYS = sorted(
    (set(msg.UserInput.__dataclass_fields__) - _SKIP - set(_ALIASES.values())) | set(_ALIASES) | {"problem_id"})


def load_problem(path: str | Path) -> msg.UserInput:
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise InvalidProblem(f"problem file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as e:
        raise InvalidProblem(f"cannot read problem file {path}: {e}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise InvalidProblem(f"{path}: not valid YAML{where}: {getattr(e, 'problem', e)}") from None
    if not isinstance(data, Mapping):
        raise InvalidProblem(f"{path}: expected a mapping of problem fields at the top level, "
                             f"got {type(data).__name__}")
    try:
        return problem_from_dict(data)
    except InvalidProblem as e:
        raise InvalidProblem(f"{path}: {e}") from None


def problem_from_dict(data: Mapping[str, Any]) -> msg.UserInput:
    """A UserInput from a plain mapping; unknown keys and wrong types are errors, not ignored."""
    problem = msg.UserInput()
    for key, value in data.items():
        if key == "problem_id":
            problem.task_id.problem_id = _typed("problem_id", value, str)
            continue
        name = _ALIASES.get(key, key)
        if name not in msg.UserInput.__dataclass_fields__ or name in _SKIP:
            raise InvalidProblem(f"unknown key {key!r}; the keys are: {', '.join(PROBLEM_KEYS)}")
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
        raise InvalidProblem(f"{key!r} must be a mapping, got {value!r}")
    obj = cls()
    for sub, sub_value in value.items():
        if sub not in cls.__dataclass_fields__:
            raise InvalidProblem(f"unknown key {key}.{sub}; the keys of {key} are: "
                                 f"{', '.join(cls.__dataclass_fields__)}")
        setattr(obj, sub, _typed(f"{key}.{sub}", sub_value, type(getattr(obj, sub))))
    return obj


def _struct_list(key: str, value: Any, cls: type[DataclassInstance]) -> list[Any]:
    """A list of mappings, each one ``cls``; a single mapping is a list of one."""
    items = [value] if isinstance(value, Mapping) else value
    if not isinstance(items, list):
        raise InvalidProblem(f"{key!r} must be a list of mappings with keys {', '.join(cls.__dataclass_fields__)}, "
                             f"got {value!r}")
    return [_nested(f"{key}[{i}]", item, cls) for i, item in enumerate(items)]


def _typed(key: str, value: Any, kind: type) -> Any:
    if kind is list:
        items = [value] if isinstance(value, (str, int)) else value
        if not isinstance(items, list):
            raise InvalidProblem(f"{key!r} must be a list, got {value!r}")
        if key in _INT_LISTS:
            return [_typed(f"{key}[{i}]", v, int) for i, v in enumerate(items)]
        if not all(isinstance(v, (str, int)) and not isinstance(v, bool) for v in items):
            raise InvalidProblem(f"{key!r} must be a list of names, got {value!r}")
        return [str(v) for v in items]
    if kind is str:
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise InvalidProblem(f"{key!r} must be text, got {value!r}")
        return str(value)
    if kind is bool:
        if not isinstance(value, bool):
            raise InvalidProblem(f"{key!r} must be true or false, got {value!r}")
        return value
    if kind in (int, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise InvalidProblem(f"{key!r} must be a number, got {value!r}")
        if value < 0:
            raise InvalidProblem(f"{key!r} must not be negative, got {value!r}")
        if kind is int:
            if value != int(value):
                raise InvalidProblem(f"{key!r} must be a whole number, got {value!r}")
            if value > 2**32 - 1 and key != "dataset.num_samples":
                raise InvalidProblem(f"{key!r} is too large: {value!r}")
            return int(value)
        return float(value)
    raise InvalidProblem(f"{key!r}: unsupported value {value!r}")


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
