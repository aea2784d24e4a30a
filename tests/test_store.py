"""The orchestrator's task store: iterations, persistence across restarts, threads."""

from __future__ import annotations

import sqlite3
import threading

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
