"""Reading what interface-version-1 code stored: the version-1 types and their mapping onto the current ones."""

from __future__ import annotations

import dataclasses
import sqlite3
from pathlib import Path

import pytest
from cyclonedds.idl import IdlStruct

from sustainml import _idl, _msg_v1, msg
from sustainml.msg_upgrade import RENAMED_FIELDS_V1, RENAMED_TYPES_V1, UpgradeError, interface_version, upgrade_v1

STORE_V1 = Path(__file__).parent / "data" / "store_v1.sqlite"  # written by tests/data/make_store_v1.py
NEW_IN_V2 = {("ModelCandidate", "builder"),
             # interface version 3: result paging, on request/reply types that are never stored
             ("ResultRequest", "before_unix_s"), ("ResultReply", "next_before_unix_s")}


def number(name: str) -> float:
    """The value make_store_v1.py gives a numeric field called ``name``."""
    return sum(map(ord, name)) / 4


def test_the_version_1_types_are_generated_from_the_kept_idl():
    assert _idl.generate_v1() == Path(_msg_v1.__file__).read_text(), "run: python -m sustainml._idl --legacy-v1"


def test_the_current_idl_is_still_refused_in_appendable_form():
    with pytest.raises(_idl.IdlSyntaxError, match="every struct is @final"):
        _idl.parse("module m { @appendable struct S { double x; }; };")
    assert _idl.parse("module m { @appendable struct S { double x; }; };", legacy=True).structs["S"].extensibility \
        == "appendable"


def test_every_version_1_field_has_a_place_in_version_2():
    v1 = _idl.parse(_idl.V1_IDL_PATH.read_text(), legacy=True)
    v2 = _idl.parse(_idl.IDL_PATH.read_text())
    assert set(v1.enums) == set(v2.enums)
    carried = set()
    for name, struct in v1.structs.items():
        current = RENAMED_TYPES_V1.get(name, name)
        assert current in v2.structs, f"version-1 type {name} has no current type"
        fields = {m.name for m in v2.structs[current].members}
        renames = RENAMED_FIELDS_V1.get(current, {})
        for member in struct.members:
            assert renames.get(member.name, member.name) in fields, f"{name}.{member.name} has no place in {current}"
            carried.add((current, renames.get(member.name, member.name)))
    fresh = {(s.name, m.name) for s in v2.structs.values() for m in s.members} - carried
    assert {(t, f) for t, f in fresh if t in {RENAMED_TYPES_V1.get(n, n) for n in v1.structs}} == NEW_IN_V2


def _blobs() -> dict[str, bytes]:
    with sqlite3.connect(STORE_V1) as db:
        return {
            "UserInput": db.execute("SELECT user_input FROM tasks WHERE iteration = 1").fetchone()[0],
            "TaskResult": db.execute("SELECT result FROM tasks WHERE iteration = 1").fetchone()[0],
            "JobMeasurement": db.execute("SELECT measurement FROM measurements").fetchone()[0],
            "OptionNote": db.execute("SELECT note FROM notes").fetchone()[0],
        }


def _defaults_left(value: object, path: str) -> list[str]:
    """The leaves of ``value`` that hold their type's default (0, "", False, []): fields not carried over."""
    if isinstance(value, IdlStruct):
        return [leaf for f in dataclasses.fields(value)
                if (type(value).__name__, f.name) not in NEW_IN_V2
                for leaf in _defaults_left(getattr(value, f.name), f"{path}.{f.name}")]
    if isinstance(value, list):
        return [path] if not value else [leaf for v in value for leaf in _defaults_left(v, f"{path}[]")]
    return [] if value or hasattr(value, "name") else [path]


@pytest.mark.parametrize("type_name", ["UserInput", "TaskResult", "JobMeasurement", "OptionNote"])
def test_a_version_1_blob_reads_whole_as_the_current_type(type_name):
    blob = _blobs()[type_name]
    assert interface_version(blob) == 1
    message = upgrade_v1(blob, type_name)

    assert type(message) is getattr(msg, type_name)
    assert _defaults_left(message, type_name) == []  # the fixture fills every field: all arrived
    assert interface_version(message.serialize()) == 2
    assert type(message).deserialize(message.serialize()) == message


def test_renamed_fields_keep_their_values():
    blobs = _blobs()
    result = upgrade_v1(blobs["TaskResult"], "TaskResult")
    option = result.options[0]
    assert option.total_co2_g == number("co2_g_total")
    assert option.energy_per_inference_uncertainty_j == number("energy_j_per_inference_uncertainty")
    assert option.quality == msg.QualityFigure(metric="metric", value=number("value"), higher_is_better=True)
    assert option.footprint.device_embodied_kg == number("embodied_kg_device")
    assert option.footprint.greener_regions[0].total_co2_g == number("co2_g_total")
    assert result.measuring_co2_g == number("co2_g_measuring")
    assert result.forecasts[0].predicted_co2_high_g == number("predicted_co2_g_high")
    assert result.candidates[0].builder == msg.ModelBuilder()  # version 1 had none
    assert result.state == msg.TaskState.TASK_DONE
    measurement = upgrade_v1(blobs["JobMeasurement"], "JobMeasurement")
    assert (measurement.latency_p50_ms, measurement.latency_p50_uncertainty_ms) == (
        number("latency_ms_p50"), number("latency_ms_p50_uncertainty"))
    problem = upgrade_v1(blobs["UserInput"], "UserInput")
    assert problem.constraints.max_latency_ms == number("max_latency_ms")
    assert problem.usage.horizon_days == number("horizon_days")


def test_a_blob_that_is_no_version_1_message_is_refused_by_name():
    assert interface_version(b"junk") == 0
    with pytest.raises(UpgradeError, match="6 bytes are not a version-1 Measurement"):
        upgrade_v1(b"\x00\x09\x00\x00\x01\x02", "JobMeasurement")
