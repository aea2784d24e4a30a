"""A catalogue entry's builder as the ``ModelBuilder`` a ``ModelCandidate`` carries, and back.

The provider fills ``ModelCandidate.builder`` from the entry's :class:`~.builders.BuilderSpec`; a hardware
node reads it back, through the same whitelist a catalogue file passes (:func:`.builders.parse_builder`),
and builds the model without a catalogue of its own. A partner's provider fills it the same way, so it
may propose models no catalogue holds.

Each setting is one ``BuilderSetting``, typed by the sequence that holds its value::

    d_layers: [64, 32]      integers [64, 32], is_list true
    dropout: 0.1            numbers [0.1], is_list false
    individual: false       booleans [false], is_list false
    model_type: resnet      strings ["resnet"], is_list false
    image_size: []          nothing, is_list true (an empty list)
    backbone: null          nothing, is_list false (null)

A nested mapping (a transformers sub-config such as ``backbone_config``) travels flattened, one setting
per leaf, its path joined by dots: ``backbone_config.depths`` integers [2, 2, 2, 2]. Setting names are
identifiers, so a dot never belongs to a name. A list mixing integers and reals travels as reals; a list
of lists or of mappings, and an empty mapping, cannot travel and are refused with the setting's name.

Typical use::

    builder = to_message(entry.builder, entry.num_outputs)                    # provider side
    spec = from_message(candidate.builder, candidate.task_type)                # hardware node side
    fingerprint(spec, candidate.task_type, num_outputs)                       # what stored figures key on
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from sustainml import msg

from .architecture import ZOO_FUNCTIONS, default_num_outputs
from .builders import SKLEARN, TRANSFORMERS, ZOO, BuilderSpec, parse_builder
from .errors import InvalidBuilder

__all__ = ["to_settings", "from_settings", "to_message", "from_message", "fingerprint", "num_outputs_of"]

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SEQUENCES = ("booleans", "integers", "numbers", "strings")
# Where each kind keeps its settings in a catalogue file, and what names its class.
_RAW_SETTINGS = {ZOO: "params", TRANSFORMERS: "config", SKLEARN: "params"}
_RAW_NAME = {ZOO: "name", TRANSFORMERS: "class", SKLEARN: "class"}


# ------------------------------------------------------------------------------------------ settings


def _sequence_for(field: str, values: list[Any]) -> str:
    """Which of the four sequences holds ``values`` (all of one type); ValueError naming ``field`` else."""
    if all(isinstance(v, bool) for v in values):
        return "booleans"
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        for v in values:
            if not INT64_MIN <= v <= INT64_MAX:
                raise ValueError(f"setting {field!r}: {v} does not fit an int64")
        return "integers"
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return "numbers"
    if all(isinstance(v, str) for v in values):
        return "strings"
    raise ValueError(f"setting {field!r}: expected booleans, integers, reals or strings (a list of one of these), "
                     f"got {values!r}")


def _one(field: str, value: Any) -> msg.BuilderSetting:
    setting = msg.BuilderSetting(name=field, is_list=isinstance(value, (list, tuple)))
    if value is None:
        return setting
    values = list(value) if setting.is_list else [value]
    if not values:
        return setting
    if any(isinstance(v, (list, tuple, Mapping)) for v in values):
        raise ValueError(f"setting {field!r}: a list of lists or of mappings cannot travel in a BuilderSetting; "
                         f"got {value!r}")
    sequence = _sequence_for(field, values)
    setattr(setting, sequence, [float(v) for v in values] if sequence == "numbers" else values)
    return setting


def to_settings(values: Mapping[str, Any], *, prefix: str = "") -> list[msg.BuilderSetting]:
    """``values`` (a builder's params or config, as YAML gives them) as typed settings, nested
    mappings flattened into dotted names. Raises ValueError naming the setting that cannot travel."""
    settings: list[msg.BuilderSetting] = []
    for key, value in values.items():
        if not isinstance(key, str) or not _NAME.match(key):
            raise ValueError(f"setting {prefix + str(key)!r}: a setting's name is an identifier (letters, digits, '_')")
        field = prefix + key
        if isinstance(value, Mapping):
            if not value:
                raise ValueError(f"setting {field!r}: an empty mapping cannot travel; leave the setting out")
            settings += to_settings(value, prefix=field + ".")
        else:
            settings.append(_one(field, value))
    return settings


def _value(setting: msg.BuilderSetting, field: str) -> Any:
    held = [name for name in _SEQUENCES if len(getattr(setting, name))]
    if len(held) > 1:
        raise InvalidBuilder(field, f"exactly one of {', '.join(_SEQUENCES)} holds the value; "
                                    f"{' and '.join(held)} both do")
    values = list(getattr(setting, held[0])) if held else []
    if held == ["numbers"]:
        values = [float(v) for v in values]
    elif held == ["integers"]:
        values = [int(v) for v in values]
    elif held == ["booleans"]:
        values = [bool(v) for v in values]
    if setting.is_list:
        return values
    if len(values) > 1:
        raise InvalidBuilder(field, f"is_list is false, so one value, got {len(values)} in {held[0]}; "
                                    "set is_list true for a list")
    return values[0] if values else None


def from_settings(settings: Sequence[msg.BuilderSetting], *, field: str = "builder.settings") -> dict[str, Any]:
    """The settings as plain values (lists, nested mappings from dotted names). Raises InvalidBuilder
    naming the setting at fault (``builder.settings.d_layers``)."""
    values: dict[str, Any] = {}
    for i, setting in enumerate(settings):
        path = setting.name.split(".")
        where = f"{field}.{setting.name}" if setting.name else f"{field}[{i}]"
        if not all(_NAME.match(part) for part in path):
            raise InvalidBuilder(where, "a setting's name is an identifier (letters, digits, '_'), parts of a "
                                        f"nested mapping joined by '.', e.g. backbone_config.depths; got {setting.name!r}")
        value = _value(setting, where)
        node = values
        for depth, part in enumerate(path[:-1]):
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise InvalidBuilder(where, f"{'.'.join(path[:depth + 1])} is set as a value and as a mapping")
        if path[-1] in node:
            what = "a mapping" if isinstance(node[path[-1]], dict) else "a value"
            raise InvalidBuilder(where, f"set twice (already {what}); give each setting once")
        node[path[-1]] = value
    return values


# ------------------------------------------------------------------------------------------ builders


def to_message(spec: BuilderSpec, num_outputs: int = 0) -> msg.ModelBuilder:
    """``spec`` as the candidate's ``builder``; ``num_outputs`` 0 leaves the builder's default."""
    return msg.ModelBuilder(kind=spec.kind, name=spec.name, settings=to_settings(spec.settings_dict()),
                            num_outputs=int(num_outputs))


def from_message(builder: msg.ModelBuilder, task_type: str) -> BuilderSpec:
    """The ``BuilderSpec`` a candidate's ``builder`` describes, checked against the whitelist of its
    kind for ``task_type`` (what a catalogue file's builder must pass). Raises InvalidBuilder naming
    the field: ``builder.kind``, ``builder.name``, ``builder.settings.NAME``."""
    kind = builder.kind
    if kind not in _RAW_SETTINGS:
        raise InvalidBuilder("builder.kind", f"expected one of {', '.join(_RAW_SETTINGS)}, got {kind!r}")
    raw = {"kind": kind, _RAW_NAME[kind]: builder.name, _RAW_SETTINGS[kind]: from_settings(builder.settings)}

    renamed = {f"builder.{_RAW_NAME[kind]}": "builder.name", f"builder.{_RAW_SETTINGS[kind]}": "builder.settings"}

    def fail(field: str, problem: str) -> InvalidBuilder:
        for old, new in renamed.items():   # parse_builder names a catalogue file's fields; say the message's
            if field == old or field.startswith(old + "."):
                field = new + field[len(old):]
        return InvalidBuilder(field, problem)

    return parse_builder(raw, task_type, fail, ZOO_FUNCTIONS)


def num_outputs_of(builder: msg.ModelBuilder, spec: BuilderSpec, task_type: str) -> int:
    """The classes, targets or horizon the builder asks for, else its default for ``task_type``."""
    if builder.num_outputs:
        return int(builder.num_outputs)
    try:
        return default_num_outputs(spec, task_type)
    except (TypeError, ValueError) as e:
        raise InvalidBuilder("builder.settings", f"settings {spec.describe()} accepts; it says: {e}") from None


def fingerprint(spec: BuilderSpec, task_type: str, num_outputs: int) -> str:
    """What a model is, beyond its name: 16 hex digits of a hash of its kind, class, settings (in a
    canonical order), task type and outputs. Stored figures key on it, so two models proposed under
    one name never share them, and one model proposed under two builders' equal settings does."""
    canonical = json.dumps({"kind": spec.kind, "name": spec.name, "settings": spec.settings_dict(),
                            "task_type": task_type, "num_outputs": int(num_outputs)},
                           sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]
