"""Writes tests/data/store_v1.sqlite: an orchestrator store as the interface-version-1 code wrote it
(IDL @appendable structs, XCDR2), for tests/test_store.py's migration test.

Run it with the version-1 code, never with the current one::

    git worktree add /tmp/v1 3f5fdc0
    PYTHONPATH=/tmp/v1 .venv/bin/python tests/data/make_store_v1.py /tmp/v1 tests/data/store_v1.sqlite

Every field of every message is filled, by ``filled``: a string holds its field's name, a number
``number(name)``, a flag true, an enum its last literal, a sequence one element; so a test can tell
where each version-1 field went.
"""

import dataclasses
import importlib.util
import sys
import typing
from pathlib import Path


def number(name: str) -> float:
    """The value a numeric field called ``name`` holds in the fixture (exact in binary floating point)."""
    return sum(map(ord, name)) / 4


def filled(cls, msg):
    values = {}
    hints = typing.get_type_hints(cls, include_extras=True)
    for f in dataclasses.fields(cls):
        values[f.name] = _value(f.name, hints[f.name], msg)
    return cls(**values)


def _value(name, hint, msg):
    from cyclonedds.idl import IdlEnum, IdlStruct, types

    text = repr(hint)
    if hint is str:
        return name
    if hint is bool:
        return True
    if hint is float:
        return number(name)
    if isinstance(hint, type) and issubclass(hint, IdlEnum):
        return list(hint)[-1]
    if isinstance(hint, type) and issubclass(hint, IdlStruct):
        return filled(hint, msg)
    if "sequence" in text:
        inner = typing.get_args(hint)[1].subtype
        if inner is types.byte:
            return [1, 2, 3]
        return [_value(name, inner, msg)]
    if "int" in text:  # uint32, int64, ...
        return int(number(name))
    raise TypeError(f"{name}: {hint!r}")


def main(v1_root: str, out: str) -> None:
    sys.path.insert(0, v1_root)
    from sustainml import msg

    assert "appendable" in Path(msg.__file__).read_text(), "run this with the version-1 code (PYTHONPATH)"
    spec = importlib.util.spec_from_file_location("store_v1", Path(v1_root) / "nodes/orchestrator/store.py")
    store_module = importlib.util.module_from_spec(spec)
    sys.modules["store_v1"] = store_module
    spec.loader.exec_module(store_module)
    Path(out).unlink(missing_ok=True)
    store = store_module.TaskStore(out)

    # a finished task: every field of its input, result, measurements and one note
    problem = filled(msg.UserInput, msg)
    problem.task_id = msg.TaskId()
    done = store.new_task(problem)
    result = filled(msg.TaskResult, msg)
    result.task_id, result.state = done, msg.TaskState.TASK_DONE
    result.options[0].model, result.options[0].device, result.options[0].host = "resnet18", "cpu", "gpu01"
    store.save_result(result)
    hardware = filled(msg.HardwareMeasurement, msg)
    hardware.task_id, hardware.host = done, "gpu01"
    hardware.measurements[0].model, hardware.measurements[0].device = "resnet18", "cpu"
    hardware.measurements[0].host = "gpu01"
    store.add_measurements(hardware, task_type="image_classification")
    note = filled(msg.OptionNote, msg)
    note.task_id, note.model, note.device, note.host = done, "resnet18", "cpu", "gpu01"
    store.add_note(note)

    # its next iteration, still running (a restarted orchestrator takes it up again), no result yet
    again = msg.UserInput(task_id=msg.TaskId(problem_id=done.problem_id), text="the same, greener",
                          constraints=msg.Constraints(quality_target=0.7), usage=msg.Usage(horizon_days=30.0))
    running = store.new_task(again)
    store.set_state(running, msg.TaskState.TASK_RUNNING, "hw_constraints")
    store.close()
    print(f"wrote {out}: tasks {done.problem_id} iterations 1 (done) and 2 (running)")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
