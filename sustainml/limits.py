"""Input limits: the one place that says how big, how deep and how large an input may be.

Every entry point checks what it receives against these before doing any work with it: problem files
and mappings (``sustainml.problem``), the task encoder's text (``sustainml_nodes.task_encoder``), and
every DDS message a node receives (``check_message``, called by the node runtime). A refusal is one
readable line naming the field, what was expected and what came; nothing here raises on hostile data.

The figures are far above anything a real problem or a real pipeline message holds (a problem text of
10,000 characters is about 1,500 words; the task encoder reads it in about a second on a 2-core VM)
and far below what would hold a worker for minutes or exhaust memory.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from enum import Enum
from typing import Any

__all__ = [
    "MAX_TEXT_CHARS", "MAX_PATH_CHARS", "MAX_NAME_CHARS", "MAX_ID_CHARS", "MAX_STRING_CHARS",
    "MAX_LIST_ITEMS", "MAX_SEQUENCE_ITEMS", "MAX_NESTING_DEPTH", "MAX_PROBLEM_ITEMS",
    "MAX_PROBLEM_FILE_BYTES", "MAX_PROBLEM_NUMBER", "MAX_COUNT", "MAX_NUMBER_DIGITS",
    "MAX_MAGNITUDE", "MAX_MESSAGE_BYTES", "MESSAGE_BYTES_LIMITS", "STRING_LIMITS", "SEQUENCE_LIMITS",
    "NAN_MEANS_UNKNOWN", "UINT32_MAX", "UINT64_MAX",
    "check_message", "check_text", "check_number", "check_nesting", "shorten",
]

# ---------------------------------------------------------------- problems (files, mappings, API)

MAX_TEXT_CHARS = 10_000
"""A problem's free text (``text``, ``dataset.description``): about 1,500 words. Units: characters."""

MAX_PATH_CHARS = 4_096
"""A dataset path (PATH_MAX on Linux). Units: characters."""

MAX_NAME_CHARS = 256
"""Any other text of a problem: names, regions, hints, devices, sources. Units: characters."""

MAX_LIST_ITEMS = 1_000
"""A list in a problem (regions, hardware, models, an input shape, intensity overrides)."""

MAX_NESTING_DEPTH = 16
"""Mappings and lists inside one another in a problem file; a real problem is 3 deep."""

MAX_PROBLEM_ITEMS = 20_000
"""Values in a whole problem, counted through YAML aliases (so a billion laughs stops here)."""

MAX_PROBLEM_FILE_BYTES = 1 << 20
"""A problem file (1 MiB). Units: bytes."""

MAX_PROBLEM_NUMBER = 1e15
"""The largest number a problem may give for a limit, a rate or a horizon; above it is a typo."""

MAX_COUNT = 10**15
"""The largest count a problem may give (``dataset.num_samples``): a quadrillion samples."""

MAX_NUMBER_DIGITS = 30
"""The longest digit run the task encoder reads as a number in free text; a longer one is no
constraint anyone states, and reading it would cost time quadratic in its length."""

UINT32_MAX = 2**32 - 1
UINT64_MAX = 2**64 - 1

# ---------------------------------------------------------------- DDS messages

MAX_ID_CHARS = 256
"""A task's problem id, a request id. Units: characters."""

MAX_STRING_CHARS = 65_536
"""Any other string field of a message (explanations, notes, errors). Units: characters."""

MAX_SEQUENCE_ITEMS = 100_000
"""Any sequence field of a message, unless ``SEQUENCE_LIMITS`` says otherwise."""

MAX_MAGNITUDE = 1e30
"""The largest magnitude of a float in a message: no quantity of this pipeline (FLOPs of a training
run included, about 1e25) comes near it, and products of a few such stay finite."""

MAX_MESSAGE_BYTES = 64 << 20
"""A message's size, estimated while walking it (64 MiB), unless ``MESSAGE_BYTES_LIMITS`` says
otherwise. Units: bytes."""

MESSAGE_BYTES_LIMITS: Mapping[str, int] = {"OnnxReply": 1 << 30}
"""Message types allowed more than ``MAX_MESSAGE_BYTES``, by type name: an ONNX export of a large
catalogue model is hundreds of MB. Units: bytes."""

STRING_LIMITS: Mapping[str, int] = {
    "UserInput.text": MAX_TEXT_CHARS,
    "DatasetInfo.description": MAX_TEXT_CHARS,
    "DatasetInfo.path": MAX_PATH_CHARS,
    "TaskId.problem_id": MAX_ID_CHARS,
    "UserInput.task_type_hint": MAX_NAME_CHARS,
    "UserInput.modality_hint": MAX_NAME_CHARS,
    "UserInput.train_region": MAX_NAME_CHARS,
    "UserInput.inference_region": MAX_NAME_CHARS,
    "NodeStatus.node": MAX_NAME_CHARS,
    "NodeStatus.kind": MAX_NAME_CHARS,
    "NodeStatus.host": MAX_NAME_CHARS,
}
"""String fields with a tighter limit than ``MAX_STRING_CHARS``, as ``Type.field``."""

SEQUENCE_LIMITS: Mapping[str, int] = {
    "UserInput.alternative_regions": MAX_LIST_ITEMS,
    "UserInput.allowed_hardware": MAX_LIST_ITEMS,
    "UserInput.candidate_models": MAX_LIST_ITEMS,
    "UserInput.allowed_regions": MAX_LIST_ITEMS,
    "UserInput.intensity_overrides": MAX_LIST_ITEMS,
    "DatasetInfo.input_shape": 64,
    "OnnxReply.onnx": MESSAGE_BYTES_LIMITS["OnnxReply"],
}
"""Sequence fields with another limit than ``MAX_SEQUENCE_ITEMS``, as ``Type.field``."""

NAN_MEANS_UNKNOWN = frozenset({
    "ModelCandidate.quality_value",   # a model without a published quality figure
    "QualityFigure.value",            # the same, carried into a result's option
    "Alternative.latency_change_ms",  # an alternative whose latency is not known
})
"""Float fields where NaN is a value ("unknown", documented in the catalogue), as ``Type.field``;
NaN anywhere else, and an infinity anywhere, is refused."""

_MAX_MESSAGE_DEPTH = 16   # the IDL's deepest type is 6 levels down; a deeper object is not a message


def shorten(value: Any, limit: int = 60) -> str:
    """``repr(value)`` cut to about ``limit`` characters, for a refusal line; cheap for any size (a
    huge int or string is never converted in full)."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 128:
        return f"a number of about {int(value.bit_length() * 0.30103) + 1:,} digits"
    if isinstance(value, str):
        if len(value) > limit:
            return repr(value[:limit]) + f"... ({len(value):,} characters)"
        return repr(value)
    if isinstance(value, (list, tuple, dict)):
        return f"a {type(value).__name__} of {len(value):,} items"
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


_UNSENDABLE = re.compile("[\x00\ud800-\udfff]")
"""Characters a DDS string cannot carry: NUL (CDR strings end at it) and lone surrogates (no UTF-8)."""


def check_text(field: str, value: str, limit: int) -> str | None:
    """One line when ``value`` is longer than ``limit`` characters or holds a character a DDS string
    cannot carry (NUL, a lone surrogate), else None."""
    if len(value) > limit:
        return f"{field}: at most {limit:,} characters expected, {len(value):,} came"
    bad = _UNSENDABLE.search(value)
    if bad:
        return f"{field}: text without NUL or lone surrogate characters expected, {ascii(bad.group(0))} came " \
               f"at character {bad.start() + 1:,}"
    return None


def check_number(field: str, value: Any, *, high: float, whole: bool = False) -> str | None:
    """One line when ``value`` is not a finite number in [0, high] (a whole one when ``whole``), else
    None. Works on Python ints of any size without converting them to float."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"{field}: a number expected, {shorten(value)} came"
    if isinstance(value, float) and not math.isfinite(value):
        return f"{field}: a finite number expected, {value} came"
    if value < 0:
        return f"{field}: a number >= 0 expected, {shorten(value)} came"
    if value > high:
        return f"{field}: a number of at most {high:,.15g} expected, {shorten(value)} came"
    if whole and isinstance(value, float) and not value.is_integer():
        return f"{field}: a whole number expected, {value!r} came"
    return None


def check_nesting(data: Any, *, max_depth: int = MAX_NESTING_DEPTH, max_items: int = MAX_PROBLEM_ITEMS,
                  what: str = "the problem") -> str | None:
    """One line when plain data (mappings, lists) nests deeper than ``max_depth`` or holds more than
    ``max_items`` values in all (shared values counted each time they are reached), else None.
    Iterative, so any depth (or a cycle) is refused without recursion."""
    stack: list[tuple[Any, int]] = [(data, 0)]
    items = 0
    while stack:
        value, depth = stack.pop()
        items += 1
        if items > max_items:
            return f"{what}: at most {max_items:,} values expected, more came (repeated aliases count each time)"
        if isinstance(value, Mapping):
            children: Any = list(value.keys()) + list(value.values())
        elif isinstance(value, (list, tuple)):
            children = value
        else:
            continue
        if depth + 1 > max_depth:
            return f"{what}: nesting at most {max_depth} deep expected, deeper came"
        if len(children) > max_items:
            return f"{what}: at most {max_items:,} values expected, a list or mapping of {len(children):,} came"
        stack.extend((child, depth + 1) for child in children)
    return None


# ---------------------------------------------------------------- whole messages

def check_message(message: Any, *, max_bytes: int | None = None) -> str | None:
    """Whether a decoded DDS message (an IdlStruct dataclass instance) is within the limits: every
    string and sequence no longer than its limit (``STRING_LIMITS``, ``SEQUENCE_LIMITS``, else
    ``MAX_STRING_CHARS``, ``MAX_SEQUENCE_ITEMS``), every float finite (NaN only where it means
    unknown: ``NAN_MEANS_UNKNOWN``) and of magnitude at most ``MAX_MAGNITUDE``, and the whole no
    larger than ``max_bytes`` (default: ``MESSAGE_BYTES_LIMITS`` for its type, else
    ``MAX_MESSAGE_BYTES``). Returns None when it is, else one readable line naming the field, what
    was expected and what came ("UserInput.text: at most 10,000 characters expected, 1,048,576
    came"). Never raises; linear in the message's size, and it stops at the first refusal."""
    top = type(message).__name__
    if max_bytes is None:
        max_bytes = MESSAGE_BYTES_LIMITS.get(top, MAX_MESSAGE_BYTES)
    if not hasattr(message, "__dataclass_fields__"):
        return f"{top}: a message (a dataclass of the IDL) expected, {shorten(message)} came"
    size = 0
    # (value, path shown, "Type.field" it belongs to, depth)
    stack: list[tuple[Any, str, str, int]] = [(message, top, "", 0)]
    while stack:
        value, path, owner, depth = stack.pop()
        if depth > _MAX_MESSAGE_DEPTH:
            return f"{path}: a message at most {_MAX_MESSAGE_DEPTH} levels deep expected, deeper came"
        if isinstance(value, str):
            refusal = check_text(path, value, STRING_LIMITS.get(owner, MAX_STRING_CHARS))
            if refusal:
                return refusal
            size += 4 + len(value)
        elif isinstance(value, bool) or isinstance(value, (int, Enum)):
            size += 8
        elif isinstance(value, float):
            size += 8
            if math.isnan(value):
                if owner not in NAN_MEANS_UNKNOWN:
                    return f"{path}: a finite number expected, nan came"
            elif not math.isfinite(value) or abs(value) > MAX_MAGNITUDE:
                return f"{path}: a finite number of magnitude at most {MAX_MAGNITUDE:g} expected, {value!r} came"
        elif isinstance(value, (bytes, bytearray, memoryview)):
            limit = SEQUENCE_LIMITS.get(owner, max_bytes)
            if len(value) > limit:
                return f"{path}: at most {limit:,} bytes expected, {len(value):,} came"
            size += len(value)
        elif isinstance(value, (list, tuple)):
            limit = SEQUENCE_LIMITS.get(owner, MAX_SEQUENCE_ITEMS)
            if len(value) > limit:
                return f"{path}: at most {limit:,} items expected, {len(value):,} came"
            size += 4
            if value and all(type(v) is int for v in value[:1]) and owner in SEQUENCE_LIMITS and \
                    owner.endswith(".onnx"):
                size += len(value)   # octets: counted, not walked one by one
                continue
            stack.extend((item, f"{path}[{i}]", owner, depth + 1) for i, item in enumerate(value))
        elif hasattr(value, "__dataclass_fields__"):
            name = type(value).__name__
            stack.extend((getattr(value, f, None), f"{path}.{f}", f"{name}.{f}", depth + 1)
                         for f in value.__dataclass_fields__)
        elif value is None:
            return f"{path}: a value expected, None came"
        else:
            return f"{path}: a value of the IDL's types expected, {type(value).__name__} came"
        if size > max_bytes:
            return f"{top}: at most {max_bytes:,} bytes expected, more came (at {path})"
    return None
