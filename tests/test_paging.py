"""Past results a page at a time (interface version 3): the store picks a page on its submission index
and decodes only that page; the orchestrator's results service and ``Client.history`` walk the pages
with the cursor the reply gives; a problem too large to keep is refused at submission."""

import math

import pytest

from sustainml import limits, msg
from sustainml.exceptions import InvalidProblem
from sustainml_nodes.orchestrator import store as store_module
from sustainml_nodes.orchestrator.store import MAX_PROBLEM_BYTES, MAX_RESULT_LIMIT, TaskStore


def problem(description: str = "classify tool wear from sensor readings") -> msg.UserInput:
    return msg.UserInput(text=description)


def fill(store: TaskStore, count: int, *, at: list[float] | None = None, explanation: str = "") -> list[msg.TaskId]:
    """``count`` tasks, each with a stored result; ``at`` sets their submission times (else distinct)."""
    ids = []
    for i in range(count):
        task_id = store.new_task(problem())
        store.save_result(msg.TaskResult(task_id=task_id, state=msg.TaskState.TASK_DONE, task_type="tabular",
                                         options=[msg.TaskOption(rank=1, model=f"model-{i}", device="cpu",
                                                                 note=explanation)]))
        ids.append(task_id)
    times = at if at is not None else [1000.0 + i for i in range(count)]
    with store._lock:
        store._db.executemany("UPDATE tasks SET submitted_unix_s = ? WHERE problem_id = ? AND iteration = ?",
                              [(t, i.problem_id, i.iteration) for t, i in zip(times, ids)])
    return ids


def walk(store: TaskStore, limit: int, **filters: object) -> list[list[msg.TaskId]]:
    pages, before = [], 0.0
    while True:
        page = store.result_page(limit=limit, before_unix_s=before, **filters)
        pages.append([r.task_id for r in page.results])
        if not page.next_before_unix_s:
            return pages
        assert page.next_before_unix_s < (before or math.inf)
        before = page.next_before_unix_s


@pytest.fixture
def store():
    with TaskStore(":memory:") as s:
        yield s


# ---------------------------------------------------------------- the store


def test_pages_give_every_task_once_newest_first(store):
    ids = fill(store, 45)
    pages = walk(store, 20)
    assert [len(p) for p in pages] == [20, 20, 5]
    assert [t for p in pages for t in p] == ids[::-1]


def test_a_last_full_page_says_there_is_no_more(store):
    fill(store, 40)
    first = store.result_page(limit=20)
    last = store.result_page(limit=20, before_unix_s=first.next_before_unix_s)
    assert len(last.results) == 20 and last.next_before_unix_s == 0


def test_tasks_submitted_at_one_instant_are_never_split_between_pages(store):
    # times 1000..1004, then six at 1005, then 1006..1008 (newest): pages of 5
    times = [1000.0 + i for i in range(5)] + [1005.0] * 6 + [1006.0, 1007.0, 1008.0]
    ids = fill(store, len(times), at=times)
    pages = walk(store, 5)
    assert [t for p in pages for t in p] == ids[::-1]
    assert [len(p) for p in pages] == [3, 6, 5]   # the page stops before the instant, then holds all of it


def test_a_page_reads_only_its_own_rows(store, monkeypatch):
    fill(store, 300)
    decoded = []
    real = msg.TaskResult.deserialize
    monkeypatch.setattr(msg.TaskResult, "deserialize", lambda blob: decoded.append(1) or real(blob))
    page = store.result_page(limit=50)
    assert len(page.results) == 50 and len(decoded) == 50


def test_the_page_query_uses_the_submission_index(store, monkeypatch):
    queries = []
    monkeypatch.setattr(store, "_db", _Recording(store._db, queries))
    store.result_page(limit=20, before_unix_s=1.0)
    (page_query, params) = queries[0]
    plan = " ".join(row[-1] for row in store._db.execute("EXPLAIN QUERY PLAN " + page_query, params).fetchall())
    assert "tasks_by_submission" in plan and "TEMP B-TREE" not in plan


class _Recording:
    """An sqlite3 connection that notes the queries run through it."""

    def __init__(self, db, queries):
        self._db, self._queries = db, queries

    def execute(self, sql, params=()):
        self._queries.append((sql, params))
        return self._db.execute(sql, params)


def test_a_page_ends_before_its_results_pass_the_byte_budget(store, monkeypatch):
    monkeypatch.setattr(store_module, "MAX_PAGE_BYTES", 10_000)
    ids = fill(store, 30, explanation="x" * 3000)   # a stored result of about 3 KB each
    (size,) = store._db.execute("SELECT length(result) FROM tasks LIMIT 1").fetchone()
    pages = walk(store, 200)
    assert [t for p in pages for t in p] == ids[::-1]
    assert {len(p) for p in pages[:-1]} == {10_000 // size}


def test_a_result_larger_than_the_budget_still_makes_a_page(store, monkeypatch):
    monkeypatch.setattr(store_module, "MAX_PAGE_BYTES", 100)
    ids = fill(store, 3, explanation="x" * 3000)
    assert walk(store, 20) == [[t] for t in ids[::-1]]


def test_pages_of_one_problem(store):
    first = store.new_task(problem())
    others = fill(store, 5)
    iterations = [first] + [store.new_task(msg.UserInput(task_id=msg.TaskId(problem_id=first.problem_id)))
                            for _ in range(4)]
    found = [t for p in walk(store, 2, problem_id=first.problem_id) for t in p]
    assert found == iterations[::-1]
    assert not set(map(str, found)) & set(map(str, others))


@pytest.mark.parametrize("limit", [-1, MAX_RESULT_LIMIT + 1])
def test_a_limit_out_of_range_is_refused_with_the_range(store, limit):
    with pytest.raises(InvalidProblem, match=f"0 \\(= 20\\) to {MAX_RESULT_LIMIT}, got {limit}"):
        store.result_page(limit=limit)


@pytest.mark.parametrize("before", [math.nan, math.inf, -1.0])
def test_a_cursor_that_is_not_a_time_is_refused(store, before):
    with pytest.raises(InvalidProblem, match="before_unix_s must be a time"):
        store.result_page(before_unix_s=before)


def test_a_problem_too_large_to_keep_is_refused_in_one_line(store):
    with pytest.raises(InvalidProblem, match=f"^the problem as stored: at most {MAX_PROBLEM_BYTES:,} bytes expected, ") \
            as refused:
        store.new_task(problem("x" * (MAX_PROBLEM_BYTES + 1000)))
    assert "\n" not in str(refused.value)
    assert store.results() == []
    store.new_task(problem("x" * (MAX_PROBLEM_BYTES - 1000)))   # just under: kept


def test_a_stored_problem_may_be_as_large_as_a_problem_file():
    assert MAX_PROBLEM_BYTES == limits.MAX_PROBLEM_FILE_BYTES


# ---------------------------------------------------------------- the service and the client


@pytest.fixture
def orchestrator(dds, tmp_path):
    """A real orchestrator node on this test's domain, over a store of 450 finished tasks."""
    from sustainml.config import load_config
    from sustainml_nodes.orchestrator.node import Orchestrator, OrchestratorParams

    path = tmp_path / "tasks.sqlite3"
    with TaskStore(path) as s:
        ids = fill(s, 450)
    node = Orchestrator(config=load_config(), params=OrchestratorParams(store=str(path)))
    try:
        yield ids
    finally:
        node.shutdown()


def test_a_client_walks_every_page_of_a_real_orchestrator(orchestrator):
    from sustainml import Client

    ids = orchestrator
    with Client() as client:
        pages = list(client.history_pages(page_size=MAX_RESULT_LIMIT))
        assert [len(p.results) for p in pages] == [200, 200, 50]
        assert [r.task_id for p in pages for r in p.results] == ids[::-1]
        # history() pages for a limit over one page, and starts where it is told
        assert [r.task_id for r in client.history(limit=450)] == ids[::-1]
        older = client.history(limit=3, before_unix_s=pages[0].next_before_unix_s)
        assert [r.task_id for r in older] == ids[::-1][200:203]
        with pytest.raises(InvalidProblem, match="limit must be 0"):
            client.history_page(page_size=MAX_RESULT_LIMIT + 1)
        with pytest.raises(InvalidProblem, match="no task with problem id 'nope'"):
            client.history("nope")
