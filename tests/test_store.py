"""The orchestrator's task store: iterations, persistence across restarts, threads."""

from __future__ import annotations

import shutil
import sqlite3
import threading
from pathlib import Path

import pytest

from sustainml import msg
from sustainml.exceptions import ConfigError, InvalidProblem
from sustainml_nodes.orchestrator.store import SCHEMA_VERSION, TaskStore


@pytest.fixture
def store_path(tmp_path):
    return tmp_path / "state" / "nested" / "tasks.sqlite"  # parent folders do not exist yet


@pytest.fixture
def store(store_path):
    with TaskStore(store_path) as s:
        yield s


def problem(text: str = "classify seabed photos", problem_id: str = "") -> msg.UserInput:
    return msg.UserInput(
        task_id=msg.TaskId(problem_id=problem_id),
        text=text,
        constraints=msg.TaskConstraints(quality_target=0.8, max_latency_ms=20.0),
        usage=msg.UsageProfile(requests_per_day=1000.0, horizon_days=365.0),
        allowed_hardware=["cpu"],
    )


def done(task_id: msg.TaskId, model: str = "resnet18") -> msg.TaskResult:
    return msg.TaskResult(
        task_id=task_id,
        state=msg.TaskState.TASK_DONE,
        explanation=f"Recommended: {model}.",
        metric="top1_accuracy",
        options=[msg.TaskOption(model=model, device="cpu", region="FRA", total_co2_g=1.5, rank=1)],
        finished_unix_s=123.0,
    )


def test_a_new_problem_gets_a_fresh_id_and_iteration_one(store):
    submitted = problem()
    task_id = store.new_task(submitted)

    assert len(task_id.problem_id) == 32 and task_id.iteration == 1
    assert submitted.task_id.problem_id == ""  # the caller's message is left alone
    stored = store.get_input(task_id)
    assert stored.task_id == task_id and stored.text == submitted.text
    assert stored.constraints == submitted.constraints and stored.allowed_hardware == ["cpu"]


def test_refinements_are_the_next_iterations_of_their_problem(store):
    first = store.new_task(problem())
    second = store.new_task(problem("tighter latency", first.problem_id))
    third = store.new_task(problem("looser latency", first.problem_id))
    other = store.new_task(problem("predict tool wear"))

    assert (second.problem_id, second.iteration) == (first.problem_id, 2)
    assert third.iteration == 3
    assert other.problem_id != first.problem_id and other.iteration == 1


def test_an_unknown_problem_id_is_refused(store):
    with pytest.raises(InvalidProblem, match="no problem with id 'deadbeef'; omit problem_id"):
        store.new_task(problem(problem_id="deadbeef"))


def test_unknown_tasks_are_refused_by_name(store):
    ghost = msg.TaskId("nope", 1)
    with pytest.raises(InvalidProblem, match="'nope' iteration 1"):
        store.set_state(ghost, msg.TaskState.TASK_RUNNING)
    with pytest.raises(InvalidProblem):
        store.save_result(done(ghost))
    with pytest.raises(InvalidProblem):
        store.get_input(ghost)
    assert store.get_result(ghost) is None


def test_a_task_without_a_result_reads_as_its_state(store):
    task_id = store.new_task(problem())
    store.set_state(task_id, msg.TaskState.TASK_RUNNING, stage="hw_constraints")

    result = store.get_result(task_id)
    assert result.task_id == task_id
    assert result.state == msg.TaskState.TASK_RUNNING
    assert result.options == [] and result.submitted_unix_s > 0


def test_a_saved_result_reads_back_whole(store):
    task_id = store.new_task(problem())
    store.save_result(done(task_id))

    result = store.get_result(task_id)
    assert result.state == msg.TaskState.TASK_DONE
    assert result.options == done(task_id).options
    assert result.explanation == "Recommended: resnet18."
    assert result.finished_unix_s == 123.0
    assert result.submitted_unix_s > 0  # filled in from the task


def test_a_failure_is_recorded_with_its_node(store):
    task_id = store.new_task(problem())
    store.save_result(
        msg.TaskResult(task_id=task_id, state=msg.TaskState.TASK_FAILED, error="no GPU", failed_node="hw_constraints")
    )

    (result,) = store.results(task_id.problem_id)
    assert (result.state, result.error, result.failed_node) == (msg.TaskState.TASK_FAILED, "no GPU", "hw_constraints")
    assert store.unfinished() == []


def test_results_are_newest_first_and_filtered(store):
    first = store.new_task(problem())
    second = store.new_task(problem(problem_id=first.problem_id))
    other = store.new_task(problem("predict tool wear"))
    store.save_result(done(first, "resnet50"))

    assert [r.task_id for r in store.results()] == [other, second, first]
    assert [r.task_id for r in store.results(first.problem_id)] == [second, first]
    assert [r.task_id for r in store.results(first.problem_id, iteration=1)] == [first]
    assert [r.task_id for r in store.results(limit=1)] == [other]
    assert store.results(first.problem_id, iteration=1)[0].options[0].model == "resnet50"
    assert store.results("unknown") == []


def test_results_limit_zero_means_twenty(store):
    for _ in range(25):
        store.new_task(problem())
    assert len(store.results(limit=0)) == 20
    assert len(store.results(limit=25)) == 25


def test_unfinished_lists_queued_and_running_tasks_oldest_first(store):
    queued = store.new_task(problem("a"))
    running = store.new_task(problem("b"))
    finished = store.new_task(problem("c"))
    cancelled = store.new_task(problem("d"))
    store.set_state(running, msg.TaskState.TASK_RUNNING, stage="carbon_tracker")
    store.save_result(done(finished))
    store.set_state(cancelled, msg.TaskState.TASK_CANCELLED)

    assert [(task_id, given.text) for task_id, given in store.unfinished()] == [(queued, "a"), (running, "b")]


def test_everything_is_found_again_after_a_restart(store_path):
    with TaskStore(store_path) as before:
        first = before.new_task(problem())
        second = before.new_task(problem("tighter", first.problem_id))
        before.save_result(done(first))
        before.set_state(second, msg.TaskState.TASK_RUNNING, stage="model_provider")

    with TaskStore(store_path) as after:
        assert after.get_result(first).options == done(first).options
        assert after.get_input(second).text == "tighter"
        assert [task_id for task_id, _ in after.unfinished()] == [second]
        assert after.new_task(problem(problem_id=first.problem_id)).iteration == 3


def test_the_file_is_versioned_and_in_wal_mode(store, store_path):
    raw = sqlite3.connect(store_path)
    try:
        assert raw.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        raw.close()


def test_a_file_from_a_newer_version_is_refused(tmp_path):
    path = tmp_path / "future.sqlite"
    raw = sqlite3.connect(path)
    raw.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    raw.close()

    with pytest.raises(ConfigError, match="newer than this program"):
        TaskStore(path)


def test_an_in_memory_store_works(tmp_path):
    with TaskStore(":memory:") as store:
        task_id = store.new_task(problem())
        assert store.get_input(task_id).text == "classify seabed photos"


def test_concurrent_writers_never_share_an_iteration(store):
    root = store.new_task(problem())
    per_thread = 25
    errors: list[BaseException] = []
    created: list[msg.TaskId] = []
    created_lock = threading.Lock()
    start = threading.Barrier(4)

    def submit_and_finish() -> None:
        try:
            start.wait(timeout=10)
            for _ in range(per_thread):
                task_id = store.new_task(problem("refine", root.problem_id))
                store.set_state(task_id, msg.TaskState.TASK_RUNNING, stage="task_encoder")
                store.save_result(done(task_id))
                with created_lock:
                    created.append(task_id)
        except BaseException as error:  # reported by the main thread
            errors.append(error)

    threads = [threading.Thread(target=submit_and_finish) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert not any(thread.is_alive() for thread in threads)
    assert errors == []
    assert sorted(t.iteration for t in created) == list(range(2, 2 + 4 * per_thread))
    results = store.results(root.problem_id, limit=1000)
    assert len(results) == 1 + 4 * per_thread
    assert sum(r.state == msg.TaskState.TASK_DONE for r in results) == 4 * per_thread


# ------------------------------------------------------------- a file of interface version 1

STORE_V1 = Path(__file__).parent / "data" / "store_v1.sqlite"  # tests/data/make_store_v1.py, version-1 code


@pytest.fixture
def store_v1(tmp_path):
    path = tmp_path / "tasks.sqlite"
    shutil.copyfile(STORE_V1, path)
    return path


def test_a_store_of_interface_version_1_is_converted_when_opened(store_v1, caplog):
    with TaskStore(store_v1) as store:
        done_result, running_result = store.results()[::-1]
        first, second = done_result.task_id, running_result.task_id

        assert (first.iteration, second.iteration, second.problem_id) == (1, 2, first.problem_id)
        assert done_result.state == msg.TaskState.TASK_DONE and done_result.options[0].model == "resnet18"
        assert done_result.options[0].total_co2_g > 0  # co2_g_total in version 1
        assert running_result.state == msg.TaskState.TASK_RUNNING and not running_result.options
        assert [(task_id, p.text) for task_id, p in store.unfinished()] == [(second, "the same, greener")]
        assert store.get_input(second).constraints == msg.TaskConstraints(quality_target=0.7)
        evidence = store.evidence(task_type="image_classification")
        assert [r.measurement.model for r in evidence.records] == ["resnet18"]
        assert evidence.records[0].measurement.latency_p50_ms > 0  # latency_ms_p50 in version 1
        assert [n.text for n in evidence.notes] == ["text"]
        # and it goes on: a next iteration, a note on the converted result
        assert store.new_task(problem(problem_id=first.problem_id)).iteration == 3
        note = msg.OptionNote(task_id=first, model="resnet18", device="cpu", host="gpu01", text="still true")
        assert store.add_note(note).note_id == 2
    assert "converted 5 stored messages of interface version 1 to version 2, dropped 0" in caplog.text

    caplog.clear()
    with TaskStore(store_v1) as again:  # converted once
        assert again.get_result(first).options == done_result.options
    assert "interface version 1" not in caplog.text


def test_a_version_1_message_that_cannot_be_read_is_dropped_with_a_warning(store_v1, caplog):
    raw = sqlite3.connect(store_v1)
    with raw:
        raw.execute("UPDATE tasks SET result = X'0009000001' WHERE iteration = 1")
        raw.execute("UPDATE measurements SET measurement = X'00'")
        (problem_id,) = raw.execute("SELECT problem_id FROM tasks WHERE iteration = 1").fetchone()
    raw.close()

    with TaskStore(store_v1) as store:
        kept = store.get_result(msg.TaskId(problem_id, 1))
        assert kept.state == msg.TaskState.TASK_DONE and not kept.options  # the task stays, its figures are gone
        assert store.get_input(msg.TaskId(problem_id, 1)).text == "text"
        assert store.evidence().records == []
    assert f"dropped the stored TaskResult of {problem_id} iteration 1: 5 bytes are not a version-1 TaskResult" \
        in caplog.text
    assert "dropped the stored JobMeasurement of resnet18 on cpu at gpu01" in caplog.text
    assert "converted 3 stored messages of interface version 1 to version 2, dropped 2" in caplog.text


def test_a_store_written_by_this_version_at_schema_2_is_kept_as_it_is(store_path, caplog):
    with TaskStore(store_path) as store:
        task_id = store.new_task(problem())
        store.save_result(done(task_id))
    raw = sqlite3.connect(store_path)
    raw.execute("PRAGMA user_version = 2")  # as the first version-2 code left it, before this conversion
    raw.close()

    with TaskStore(store_path) as store:
        assert store.get_result(task_id).options == done(task_id).options
    assert "interface version 1" not in caplog.text
