"""Shared evidence: every measurement the orchestrator received, queryable by task type, device, model
and host, and the notes people attach to an option of a result. The store as plain logic first, then
the two services on a real pipeline, as a user calls them through the client."""

from __future__ import annotations

import sqlite3

import pytest

from sustainml import Client, msg
from sustainml.exceptions import InvalidProblem
from sustainml_nodes.orchestrator.store import (DEFAULT_EVIDENCE_LIMIT, MAX_EVIDENCE_LIMIT, SCHEMA_VERSION,
                                                TaskStore)
from sustainml_nodes.orchestrator.tasks import TaskBook


@pytest.fixture
def store():
    with TaskStore(":memory:") as s:
        yield s


def new_task(store: TaskStore, text: str = "predict tool wear") -> msg.TaskId:
    return store.new_task(msg.UserInput(text=text))


def hardware(task_id: msg.TaskId, host: str, *runs: tuple[str, str], method: str = "estimate",
             cached: bool = False, basis: str = "measured", index: int = 0,
             plan_done: bool = True) -> msg.HardwareMeasurement:
    """One hardware node's message: a measurement per (model, device); by default its whole answer."""
    return msg.HardwareMeasurement(task_id=task_id, host=host, message_index=index, plan_done=plan_done, measurements=[
        msg.JobMeasurement(model=model, device=device, host=host, energy_per_inference_j=0.5,
                        energy_per_inference_uncertainty_j=0.05, energy_method=method, cached=cached, basis=basis)
        for model, device in runs])


def finish(store: TaskStore, task_id: msg.TaskId, *options: tuple[str, str, str, str]) -> None:
    """Save a done result with an option per (model, device, host, region)."""
    store.save_result(msg.TaskResult(task_id=task_id, state=msg.TaskState.TASK_DONE, options=[
        msg.TaskOption(model=m, device=d, host=h, region=r) for m, d, h, r in options]))


def seen(records: list[msg.EvidenceRecord]) -> list[tuple[str, str, str]]:
    return [(r.measurement.model, r.measurement.device, r.measurement.host) for r in records]


@pytest.fixture
def fleet(store):
    """Two tasks measured on three hosts: an image task on a GPU box and a laptop, a tabular one on a
    server; each answer arrives after the one before."""
    images, tabular = new_task(store, "classify photos"), new_task(store)
    store.add_measurements(hardware(images, "gpu01", ("resnet18", "cuda:0"), ("resnet18", "cuda:1"),
                                    ("resnet18", "cpu"), method="nvml"), task_type="image_classification")
    store.add_measurements(hardware(images, "laptop", ("mobilenet_v2", "cpu"), method="rapl", cached=True),
                           task_type="image_classification")
    store.add_measurements(hardware(tabular, "server", ("tabular_mlp", "cpu"), ("ridge_regression", "cpu")),
                           task_type="tabular_regression")
    return images, tabular


# ---------------------------------------------------------------- measurements

def test_every_measurement_comes_back_newest_answer_first_with_its_task(store, fleet):
    images, tabular = fleet
    records = store.evidence().records

    assert [r.measurement.host for r in records] == ["server"] * 2 + ["laptop"] + ["gpu01"] * 3
    assert {(r.task_id.problem_id, r.task_type) for r in records} == {
        (images.problem_id, "image_classification"), (tabular.problem_id, "tabular_regression")}
    laptop = next(r for r in records if r.measurement.host == "laptop")
    assert laptop.measurement.energy_method == "rapl" and laptop.measurement.cached
    assert laptop.measurement.energy_per_inference_uncertainty_j == 0.05
    assert records[0].received_unix_s >= records[-1].received_unix_s > 0


@pytest.mark.parametrize("filters, expected", [
    ({"task_type": "tabular_regression"}, {("tabular_mlp", "cpu", "server"), ("ridge_regression", "cpu", "server")}),
    ({"device": "cuda"}, {("resnet18", "cuda:0", "gpu01"), ("resnet18", "cuda:1", "gpu01")}),
    ({"device": "cuda:1"}, {("resnet18", "cuda:1", "gpu01")}),
    ({"device": "cuda:"}, set()),
    ({"device": "cp"}, set()),
    ({"model": "resnet18", "device": "cpu"}, {("resnet18", "cpu", "gpu01")}),
    ({"host": "laptop"}, {("mobilenet_v2", "cpu", "laptop")}),
    ({"task_type": "image_classification", "host": "server"}, set()),
], ids=["task-type", "device-family", "one-device", "no-partial-device", "no-device-prefix", "model-and-device",
        "host", "nothing-matches"])
def test_filters_each_narrow_what_comes_back(store, fleet, filters, expected):
    assert set(seen(store.evidence(**filters).records)) == expected


def test_one_task_or_one_iteration(store, fleet):
    images, _ = fleet
    assert {r.task_id.problem_id for r in store.evidence(problem_id=images.problem_id).records} == {
        images.problem_id}
    assert store.evidence(problem_id=images.problem_id, iteration=2).records == []


def test_limit_keeps_the_newest_and_zero_means_the_default(store, fleet):
    # One answer's measurements share their time; the last of the message counts as the newest.
    assert seen(store.evidence(limit=1).records) == [("ridge_regression", "cpu", "server")]
    many = new_task(store)
    store.add_measurements(hardware(many, "big", *[(f"m{i}", "cpu") for i in range(DEFAULT_EVIDENCE_LIMIT + 1)]),
                           task_type="tabular_regression")
    assert len(store.evidence().records) == DEFAULT_EVIDENCE_LIMIT
    assert len(store.evidence(limit=DEFAULT_EVIDENCE_LIMIT + 10).records) == DEFAULT_EVIDENCE_LIMIT + 7


@pytest.mark.parametrize("limit", [-1, MAX_EVIDENCE_LIMIT + 1])
def test_a_limit_out_of_range_is_refused_with_the_range(store, limit):
    with pytest.raises(InvalidProblem, match=f"limit must be 0 \\(= 500\\) to 5000, got {limit}"):
        store.evidence(limit=limit)


def test_a_host_answering_again_replaces_its_measurements_and_fills_in_its_name(store):
    task_id = new_task(store)
    store.add_measurements(hardware(task_id, "server", ("tabular_mlp", "cpu"), ("ridge_regression", "cpu")),
                           task_type="tabular_regression")
    again = hardware(task_id, "server", ("tabular_mlp", "cpu"), cached=True)
    again.measurements[0].host = ""   # a partner's node may leave it to the message
    store.add_measurements(again, task_type="tabular_regression")

    (record,) = store.evidence().records
    assert seen([record]) == [("tabular_mlp", "cpu", "server")] and record.measurement.cached


def test_measurements_of_an_unknown_task_are_refused(store):
    with pytest.raises(InvalidProblem, match="no task with id 'ghost' iteration 1"):
        store.add_measurements(hardware(msg.TaskId("ghost", 1), "server", ("tabular_mlp", "cpu")), task_type="")


# ---------------------------------------------------------------- notes

def note(task_id: msg.TaskId, text: str = "latency spikes under load", **option: str) -> msg.OptionNote:
    fields = {"model": "resnet18", "device": "cuda:0", "host": "gpu01", **option}
    return msg.OptionNote(task_id=task_id, text=text, **fields)


@pytest.fixture
def finished(store, fleet):
    images, tabular = fleet
    finish(store, images, ("resnet18", "cuda:0", "gpu01", "FRA"), ("resnet18", "cuda:0", "gpu01", "DEU"),
           ("mobilenet_v2", "cpu", "laptop", "FRA"))
    return images, tabular


def test_a_note_is_stored_with_an_id_and_a_time_and_comes_back_with_its_option(store, finished):
    images, _ = finished
    given = note(images, "  seen 10% lower on the A100 box \n", author=" ana ")
    first = store.add_note(given)
    second = store.add_note(note(images, "fine on battery", model="mobilenet_v2", device="cpu", host="laptop",
                                 region="FRA"))

    assert (first.note_id, second.note_id) == (1, 2)
    assert (first.text, first.author, first.region) == ("seen 10% lower on the A100 box", "ana", "")
    assert first.created_unix_s > 0 and given.note_id == 0   # the caller's message is left alone
    assert store.evidence().notes == [first, second]
    assert store.evidence(device="cuda").notes == [first]
    assert store.evidence(model="mobilenet_v2").notes == [second]
    assert store.evidence(device="cuda:1").notes == []   # measured on the same host, another option


def test_notes_follow_only_the_records_returned(store, finished):
    images, _ = finished
    store.add_note(note(images))
    assert store.evidence(limit=1).notes == []   # the newest record is the tabular task's


@pytest.mark.parametrize("change, expected", [
    ({"text": " \n "}, "the note has no text; write what others should know about this option"),
    ({"text": "x" * 2001}, "the note has 2001 characters; at most 2000 are kept, shorten it"),
    ({"author": "y" * 101}, "the author name has 101 characters; at most 100"),
    ({"model": "resnet50"},
     "has no option 'resnet50 on cuda:0 at gpu01'; its options are resnet18 on cuda:0 at gpu01, "
     "mobilenet_v2 on cpu at laptop"),
    ({"host": "laptop"}, "has no option 'resnet18 on cuda:0 at laptop'"),
    ({"region": "USA"}, "has resnet18 on cuda:0 at gpu01 in DEU, FRA, not in 'USA'; leave region empty to note "
                        "it in every region"),
], ids=["blank-text", "long-text", "long-author", "unknown-model", "wrong-host", "wrong-region"])
def test_a_bad_note_is_refused_saying_what_is_wrong_and_what_is_right(store, finished, change, expected):
    images, _ = finished
    given = note(images)
    for name, value in change.items():
        setattr(given, name, value)
    with pytest.raises(InvalidProblem, match=expected.replace("(", r"\(")):
        store.add_note(given)
    assert store.evidence().notes == []


def test_the_longest_note_and_author_are_accepted(store, finished):
    images, _ = finished
    kept = store.add_note(note(images, "x" * 2000, author="y" * 100))
    assert len(kept.text) == 2000 and len(kept.author) == 100


def test_a_note_needs_a_task_with_a_result(store, finished):
    _, tabular = finished   # measured, not finished
    with pytest.raises(InvalidProblem, match="no task with id 'ghost' iteration 1; submit the problem first"):
        store.add_note(note(msg.TaskId("ghost", 1)))
    with pytest.raises(InvalidProblem, match=f"task '{tabular.problem_id}' iteration 1 has no options to note "
                                             "\\(queued\\); notes attach to the options of a finished result"):
        store.add_note(note(tabular, model="tabular_mlp", device="cpu", host="server"))


# ---------------------------------------------------------------- the file

def test_a_file_from_schema_one_is_migrated_keeping_its_tasks(tmp_path):
    path = tmp_path / "orchestrator.sqlite3"
    with TaskStore(path) as store:
        task_id = new_task(store)
    with sqlite3.connect(path) as db:   # back to schema 1: tasks only
        db.execute("DROP TABLE measurements")
        db.execute("DROP TABLE notes")
        db.execute("PRAGMA user_version = 1")
    with TaskStore(path) as migrated:
        assert migrated.get_input(task_id).text == "predict tool wear"
        migrated.add_measurements(hardware(task_id, "server", ("tabular_mlp", "cpu")), task_type="tabular")
        assert len(migrated.evidence().records) == 1
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 3


# ---------------------------------------------------------------- the task book keeps them

def test_the_task_book_keeps_the_measurements_of_its_tasks_with_their_type(store):
    book = TaskBook(store)
    task_id, _ = book.submit(msg.UserInput(text="predict tool wear", task_type_hint="tabular_regression"))
    book.on_measurement(hardware(task_id, "laptop", ("tabular_mlp", "cpu")))   # before the encoder's answer
    book.on_encoded(msg.EncodedTask(task_id=task_id, task_type="tabular_classification"))
    # The server's estimates first (not evidence), then its measurement as it lands, then its last message.
    book.on_measurement(hardware(task_id, "server", ("tabular_mlp", "cpu"), basis="estimated", plan_done=False))
    book.on_measurement(hardware(task_id, "server", ("tabular_mlp", "cpu"), index=1, plan_done=False))
    book.on_measurement(hardware(task_id, "server", ("tabular_mlp", "cpu"), index=2))
    book.on_measurement(hardware(task_id, "server", ("ridge_regression", "cpu"), index=3))   # after its last: dropped
    book.on_measurement(hardware(msg.TaskId("ghost", 1), "server", ("tabular_mlp", "cpu")))

    assert [(r.measurement.host, r.measurement.model, r.task_type) for r in store.evidence().records] == [
        ("server", "tabular_mlp", "tabular_classification"), ("laptop", "tabular_mlp", "tabular_regression")]


# ---------------------------------------------------------------- the services on a real pipeline

TABULAR = {
    "text": "predict tool wear from CNC sensor data",
    "task_type": "tabular_regression",
    "dataset": {"num_samples": 1000, "num_features": 8},
    "train_region": "DEU",
    "models": ["tabular_mlp", "ridge_regression"],
}


def test_evidence_and_notes_through_the_client(shared_pipeline):
    with Client() as client:
        result = client.submit(TABULAR).result(timeout_s=180)
        mine = result.task_id.problem_id   # the shared pipeline's store holds other tests' tasks too
        evidence = client.evidence(problem_id=mine)
        (host,) = {r.measurement.host for r in evidence.records}
        best = result.options[0]
        kept = client.add_note(result.task_id, model=best.model, device=best.device, host=best.host,
                               region=best.region, text="matches our production box", author="ana")
        with_note = client.evidence(model=best.model, problem_id=mine)
        on_gpus = client.evidence(device="cuda", problem_id=mine)
        of_images = client.evidence(task_type="image_classification", problem_id=mine)
        newest = client.evidence(limit=1)
        with pytest.raises(InvalidProblem, match=f"has no option 'resnet50 on cpu at {host}'; its options are "):
            client.add_note(result.task_id, model="resnet50", device="cpu", host=host, text="?")
        with pytest.raises(InvalidProblem, match="the note has no text"):
            client.add_note(result.task_id, model=best.model, device=best.device, host=best.host, text=" ")
        with pytest.raises(InvalidProblem, match="limit must be 0"):
            client.evidence(limit=MAX_EVIDENCE_LIMIT + 1)

    assert evidence.error == "" and evidence.notes == []
    assert {r.task_id.problem_id for r in evidence.records} == {result.task_id.problem_id}
    assert {r.task_type for r in evidence.records} == {"tabular_regression"}
    measured = {(r.measurement.model, r.measurement.device, r.measurement.host): r.measurement
                for r in evidence.records}
    # Every figure measured is evidence; a pre-run estimate is not.
    assert any(option.basis == "measured" for option in result.options)
    for option in result.options:
        if option.basis == "estimated":
            assert (option.model, option.device, option.host) not in measured
            continue
        measurement = measured[(option.model, option.device, option.host)]
        assert measurement.energy_method == option.energy_method != ""
        assert measurement.energy_per_inference_j == option.energy_per_inference_j > 0

    assert kept.note_id > 0 and kept.author == "ana" and kept.created_unix_s > 0
    assert with_note.notes == [kept]
    assert {r.measurement.model for r in with_note.records} == {best.model}
    assert on_gpus.records == [] and of_images.records == [] and on_gpus.notes == []
    assert len(newest.records) == 1
