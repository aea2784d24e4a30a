"""Messages stored by interface version 1, read into the current types of ``idl/sustainml.idl``.

Version 2 made every struct @final (plain XCDR1, which every vendor reads) and renamed six types and
some fields (the unit last), so a version-1 CDR blob no longer deserialises as the current type.
``upgrade_v1(blob, "TaskResult")`` reads it with the version-1 types (``sustainml/_msg_v1.py``,
generated from ``idl/history/sustainml_v1.idl``) and copies every field into the current type by
name, through the rename maps below. A field version 1 did not have keeps its default
(``ModelCandidate.builder``); no version-1 field is dropped (``tests/test_msg_upgrade.py`` checks the
maps cover every one). For stores that keep messages across upgrades: the orchestrator's task store.
"""

from __future__ import annotations

import dataclasses
import typing
from functools import cache
from typing import TYPE_CHECKING, Any

from cyclonedds.idl import IdlEnum, IdlStruct

from . import _msg_v1, msg
from .exceptions import SustainMLError

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

__all__ = ["RENAMED_FIELDS_V1", "RENAMED_TYPES_V1", "UpgradeError", "interface_version", "upgrade_v1"]

RENAMED_TYPES_V1: dict[str, str] = {
    "Constraints": "TaskConstraints",
    "Usage": "UsageProfile",
    "Device": "DeviceInfo",
    "Quality": "QualityFigure",
    "Footprint": "FootprintDetail",
    "Measurement": "JobMeasurement",
}
"""Version-1 type name -> current name (version 2: no member is named like its type but for case)."""

_MEASUREMENT_FIELDS = {
    "energy_j_per_inference": "energy_per_inference_j",
    "energy_j_per_inference_uncertainty": "energy_per_inference_uncertainty_j",
}
_CO2_FIELDS = {"co2_g_training": "training_co2_g", "co2_g_inference": "inference_co2_g", "co2_g_total": "total_co2_g"}

RENAMED_FIELDS_V1: dict[str, dict[str, str]] = {
    "JobMeasurement": {
        **_MEASUREMENT_FIELDS,
        "latency_ms_p50": "latency_p50_ms",
        "latency_ms_p95": "latency_p95_ms",
        "total_energy_j_per_inference": "total_energy_per_inference_j",
        "energy_j_per_train_sample": "energy_per_train_sample_j",
        "energy_j_per_train_sample_uncertainty": "energy_per_train_sample_uncertainty_j",
        "latency_ms_p50_uncertainty": "latency_p50_uncertainty_ms",
    },
    "Alternative": {"co2_g_total": "total_co2_g"},
    "FootprintDetail": {
        **_CO2_FIELDS,
        "co2_g_experimentation": "experimentation_co2_g",
        "embodied_kg_device": "device_embodied_kg",
        "co2_g_embodied": "embodied_co2_g",
        "co2_g_total_uncertainty": "total_co2_uncertainty_g",
        "sci_g_per_request_uncertainty": "sci_uncertainty_g_per_request",
    },
    "CarbonFootprint": {"co2_g_measuring": "measuring_co2_g"},
    "StageRecord": {"energy_j_uncertainty": "energy_uncertainty_j", "co2_g_uncertainty": "co2_uncertainty_g"},
    "TrainingForecast": {
        "energy_j_so_far": "energy_so_far_j",
        "predicted_energy_j_low": "predicted_energy_low_j",
        "predicted_energy_j_high": "predicted_energy_high_j",
        "predicted_co2_g_low": "predicted_co2_low_g",
        "predicted_co2_g_high": "predicted_co2_high_g",
    },
    "TaskOption": {**_MEASUREMENT_FIELDS, **_CO2_FIELDS, "latency_ms_uncertainty": "latency_uncertainty_ms"},
    "TaskResult": {"co2_g_measuring": "measuring_co2_g"},
}
"""Current type name -> {version-1 field name -> current field name} (version 2: units last)."""

_V1_NAME = {current: old for old, current in RENAMED_TYPES_V1.items()}


class UpgradeError(SustainMLError):
    """Raised when a stored blob is not a version-1 message of the type asked for (truncated, or
    written by other code)."""


def interface_version(blob: bytes) -> int:
    """Which interface version serialised ``blob``, from its CDR encapsulation header: 1 for XCDR2
    delimited (version 1's @appendable types), 2 for plain XCDR1 (version 2's @final types), 0 for
    neither (not a message of ours)."""
    kind = bytes(blob[:2])
    if kind in (b"\x00\x08", b"\x00\x09"):  # D_CDR2_BE, D_CDR2_LE
        return 1
    if kind in (b"\x00\x00", b"\x00\x01"):  # CDR_BE, CDR_LE
        return 2
    return 0


def upgrade_v1(blob: bytes, type_name: str) -> Any:
    """The version-1 CDR ``blob`` of the message now called ``type_name`` (e.g. "JobMeasurement"), as
    an instance of ``sustainml.msg.<type_name>``.

    Raises:
        UpgradeError: ``blob`` does not deserialise as that version-1 type.
    """
    current = getattr(msg, type_name)
    old_name = _V1_NAME.get(type_name, type_name)
    try:
        old = getattr(_msg_v1, old_name).deserialize(bytes(blob))
    except Exception as e:  # cyclonedds raises plain Exception, struct.error, IndexError, ... on bad bytes
        raise UpgradeError(f"{len(blob)} bytes are not a version-1 {old_name} ({type(e).__name__}: {e})") from e
    return _convert(old, current)


def _convert(old: DataclassInstance, current: type) -> Any:
    renames = RENAMED_FIELDS_V1.get(current.__name__, {})
    targets = _field_types(current)
    values = {}
    for f in dataclasses.fields(old):
        name = renames.get(f.name, f.name)
        if name not in targets:  # the maps are checked complete by a test; this guards a wrong edit
            raise UpgradeError(f"version-1 {type(old).__name__}.{f.name} has no place in {current.__name__}")
        values[name] = _value(getattr(old, f.name), targets[name])
    return current(**values)


def _value(value: Any, target: Any) -> Any:
    if isinstance(target, type) and issubclass(target, IdlStruct):
        return _convert(value, target)
    if isinstance(target, type) and issubclass(target, IdlEnum):
        return target[value.name]
    if isinstance(value, list):
        inner = typing.get_args(target)[1].subtype  # types.sequence[X] is Annotated[list, sequence(X)]
        return [_value(v, inner) for v in value]
    return value


@cache
def _field_types(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls, include_extras=True)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}
