"""Where the orchestrator keeps every task: its input, its state and its result, across restarts.

One SQLite file (stdlib ``sqlite3``, WAL mode) so that a restarted orchestrator finds its unfinished
tasks and a front end can read the results of earlier iterations. Messages are stored as their CDR
serialisation (``msg.X.serialize()``): the IDL stays the one definition of their fields, and
``@appendable`` types still read back after fields are appended.
"""

from __future__ import annotations

import copy
import time
import uuid
from typing import Any

from sustainml import msg
from sustainml.exceptions import InvalidProblem
from sustainml.sqlite_file import SqliteFile

__all__ = ["TaskStore", "SCHEMA_VERSION", "DEFAULT_RESULT_LIMIT"]

DEFAULT_RESULT_LIMIT = 20  # ResultRequest.limit 0 means this many
_UNFINISHED = (msg.TaskState.TASK_QUEUED.name, msg.TaskState.TASK_RUNNING.name)

# _MIGRATIONS[v] brings a file at user_version v to v + 1.
_MIGRATIONS: dict[int, list[str]] = {
    0: [
        """
        CREATE TABLE tasks (
            problem_id        TEXT    NOT NULL,
            iteration         INTEGER NOT NULL,
            state             TEXT    NOT NULL,            -- a msg.TaskState name
            stage             TEXT    NOT NULL DEFAULT '', -- the node the task waits on
            submitted_unix_s  REAL    NOT NULL,
            updated_unix_s    REAL    NOT NULL,
            user_input        BLOB    NOT NULL,            -- msg.UserInput, task_id filled in
            result            BLOB,                        -- msg.TaskResult, NULL until saved
            error             TEXT    NOT NULL DEFAULT '',
            failed_node       TEXT    NOT NULL DEFAULT '',
            PRIMARY KEY (problem_id, iteration)
        )
        """,
        "CREATE INDEX tasks_by_submission ON tasks (submitted_unix_s)",
        "CREATE INDEX tasks_by_state ON tasks (state)",
    ],
}
SCHEMA_VERSION = len(_MIGRATIONS)


class TaskStore(SqliteFile):
    """The orchestrator's task table on one SQLite file; safe to call from several threads.

    ``path`` may be ``":memory:"`` for a store that lives as long as the object. The row is the
    truth about a task's state: a stored ``TaskResult`` is returned with the row's current state,
    error and failed node.
    """

    migrations = _MIGRATIONS
    what = "task store"

    # ----------------------------------------------------------------------------- writing

    def new_task(self, problem: msg.UserInput) -> msg.TaskId:
        """Store ``problem`` as a QUEUED task and return its id.

        An empty ``problem.task_id.problem_id`` starts a new problem (a fresh uuid4 hex id,
        iteration 1); a known one adds that problem's next iteration. ``problem`` is not modified.

        Raises:
            InvalidProblem: the given problem_id is not in the store.
        """
        stored = copy.deepcopy(problem)
        now = time.time()
        with self._transaction() as db:
            problem_id = problem.task_id.problem_id
            if problem_id:
                (last,) = db.execute(
                    "SELECT MAX(iteration) FROM tasks WHERE problem_id = ?", (problem_id,)
                ).fetchone()
                if last is None:
                    raise InvalidProblem(
                        f"no problem with id {problem_id!r}; omit problem_id to start a new problem"
                    )
                task_id = msg.TaskId(problem_id=problem_id, iteration=last + 1)
            else:
                task_id = msg.TaskId(problem_id=uuid.uuid4().hex, iteration=1)
            stored.task_id = task_id
            db.execute(
                "INSERT INTO tasks (problem_id, iteration, state, submitted_unix_s, updated_unix_s, user_input)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (
                    task_id.problem_id,
                    task_id.iteration,
                    msg.TaskState.TASK_QUEUED.name,
                    now,
                    now,
                    stored.serialize(),
                ),
            )
        return msg.TaskId(problem_id=task_id.problem_id, iteration=task_id.iteration)

    def set_state(self, task_id: msg.TaskId, state: msg.TaskState, stage: str = "") -> None:
        """Record that the task is now in ``state``, waiting on node ``stage`` ("" = none).

        Raises:
            InvalidProblem: no such task.
        """
        self._update(
            task_id, "state = ?, stage = ?, updated_unix_s = ?", (msg.TaskState(state).name, stage, time.time())
        )

    def save_result(self, result: msg.TaskResult) -> None:
        """Store ``result`` for its task; the task takes the result's state, error and failed node.

        A result whose ``submitted_unix_s`` is 0 is stored with the task's submission time.

        Raises:
            InvalidProblem: no task with the result's id.
        """
        with self._transaction() as db:
            row = db.execute(
                "SELECT submitted_unix_s FROM tasks WHERE problem_id = ? AND iteration = ?",
                (result.task_id.problem_id, result.task_id.iteration),
            ).fetchone()
            if row is None:
                raise InvalidProblem(_no_task(result.task_id))
            stored = result
            if not result.submitted_unix_s:
                stored = copy.deepcopy(result)
                stored.submitted_unix_s = row[0]
            db.execute(
                "UPDATE tasks SET result = ?, state = ?, stage = '', error = ?, failed_node = ?, updated_unix_s = ?"
                " WHERE problem_id = ? AND iteration = ?",
                (
                    stored.serialize(),
                    msg.TaskState(result.state).name,
                    result.error,
                    result.failed_node,
                    time.time(),
                    result.task_id.problem_id,
                    result.task_id.iteration,
                ),
            )

    # ----------------------------------------------------------------------------- reading

    def get_result(self, task_id: msg.TaskId) -> msg.TaskResult | None:
        """The task's result; for a task without one yet, a result with its current state and no
        options. None when the store has no such task."""
        rows = self._select("WHERE problem_id = ? AND iteration = ?", (task_id.problem_id, task_id.iteration))
        return _result_of(rows[0]) if rows else None

    def results(self, problem_id: str = "", iteration: int = 0, limit: int = 20) -> list[msg.TaskResult]:
        """Results newest first, of one problem (``problem_id``) or of all, of one iteration or of all
        (``iteration`` 0); at most ``limit`` of them (0 = 20). Tasks without a result yet appear with
        their current state and no options."""
        if limit < 0:
            raise ValueError(f"limit must be 0 (= {DEFAULT_RESULT_LIMIT}) or more, got {limit}")
        where, params = [], []
        if problem_id:
            where.append("problem_id = ?")
            params.append(problem_id)
        if iteration:
            where.append("iteration = ?")
            params.append(iteration)
        clause = ("WHERE " + " AND ".join(where) if where else "") + (
            " ORDER BY submitted_unix_s DESC, rowid DESC LIMIT ?"
        )
        params.append(limit or DEFAULT_RESULT_LIMIT)
        return [_result_of(row) for row in self._select(clause, tuple(params))]

    def get_input(self, task_id: msg.TaskId) -> msg.UserInput:
        """The problem as submitted, with its task id filled in.

        Raises:
            InvalidProblem: no such task.
        """
        with self._lock:
            row = self._db.execute(
                "SELECT user_input FROM tasks WHERE problem_id = ? AND iteration = ?",
                (task_id.problem_id, task_id.iteration),
            ).fetchone()
        if row is None:
            raise InvalidProblem(_no_task(task_id))
        return msg.UserInput.deserialize(row[0])

    def unfinished(self) -> list[tuple[msg.TaskId, msg.UserInput]]:
        """Tasks QUEUED or RUNNING, oldest first: what a restarted orchestrator must take up again."""
        with self._lock:
            rows = self._db.execute(
                "SELECT problem_id, iteration, user_input FROM tasks WHERE state IN (?, ?)"
                " ORDER BY submitted_unix_s, rowid",
                _UNFINISHED,
            ).fetchall()
        return [
            (msg.TaskId(problem_id=problem_id, iteration=iteration), msg.UserInput.deserialize(blob))
            for problem_id, iteration, blob in rows
        ]

    # ----------------------------------------------------------------------------- internals

    def _update(self, task_id: msg.TaskId, assignments: str, params: tuple[object, ...]) -> None:
        with self._lock:
            cursor = self._db.execute(
                f"UPDATE tasks SET {assignments} WHERE problem_id = ? AND iteration = ?",
                (*params, task_id.problem_id, task_id.iteration),
            )
        if cursor.rowcount == 0:
            raise InvalidProblem(_no_task(task_id))

    def _select(self, clause: str, params: tuple[object, ...]) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._db.execute(
                "SELECT problem_id, iteration, state, submitted_unix_s, updated_unix_s, result, error, failed_node"
                f" FROM tasks {clause}",
                params,
            ).fetchall()


def _no_task(task_id: msg.TaskId) -> str:
    return f"no task with id {task_id.problem_id!r} iteration {task_id.iteration}; submit the problem first"


def _result_of(row: tuple[Any, ...]) -> msg.TaskResult:
    problem_id, iteration, state, submitted_unix_s, _updated, blob, error, failed_node = row
    if blob is None:
        return msg.TaskResult(
            task_id=msg.TaskId(problem_id=problem_id, iteration=iteration),
            state=msg.TaskState[state],
            error=error,
            failed_node=failed_node,
            submitted_unix_s=submitted_unix_s,
        )
    result = msg.TaskResult.deserialize(blob)
    result.state = msg.TaskState[state]
    result.error = error
    result.failed_node = failed_node
    return result

