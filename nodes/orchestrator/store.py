"""Where the orchestrator keeps every task: its input, its state and its result, across restarts;
and the shared evidence: every measurement it received, and the notes people attach to options.

One SQLite file (stdlib ``sqlite3``, WAL mode) so that a restarted orchestrator finds its unfinished
tasks and a front end can read the results of earlier iterations. Messages are stored as their CDR
serialisation (``msg.X.serialize()``): the IDL stays the one definition of their fields. The IDL's
types do not change within an interface version; a file written by an earlier version is converted
when it is opened (schema version 3 converts interface version 1's blobs, ``sustainml.msg_upgrade``).
Interface version 3 changed only ResultRequest and ResultReply, which are never stored: a store
written by version 2 is read as it is.
"""

from __future__ import annotations

import copy
import logging
import math
import time
import uuid
from dataclasses import dataclass
from typing import Any

from sustainml import msg
from sustainml.exceptions import InvalidProblem
from sustainml.limits import MAX_PROBLEM_FILE_BYTES
from sustainml.msg_upgrade import UpgradeError, interface_version, upgrade_v1
from sustainml.report import status_name
from sustainml.sqlite_file import SqliteFile

__all__ = ["TaskStore", "Evidence", "ResultPage", "SCHEMA_VERSION", "DEFAULT_RESULT_LIMIT", "MAX_RESULT_LIMIT",
           "MAX_PAGE_BYTES", "MAX_PROBLEM_BYTES", "DEFAULT_EVIDENCE_LIMIT",
           "MAX_EVIDENCE_LIMIT", "MAX_NOTE_CHARS", "MAX_AUTHOR_CHARS"]

DEFAULT_RESULT_LIMIT = 20  # ResultRequest.limit 0 means this many
MAX_RESULT_LIMIT = 200  # ResultRequest.limit at most (idl/sustainml.idl)
MAX_PAGE_BYTES = 1_000_000  # stored results in one page at most (a page of 200 would be ~10 MB): see result_page
# The largest problem kept (its CDR, as stored), that of the largest problem file: a real one is a few
# KB; this bounds what one submission, from a file or not, adds to the store and to replies that carry it.
MAX_PROBLEM_BYTES = MAX_PROBLEM_FILE_BYTES
DEFAULT_EVIDENCE_LIMIT = 500  # EvidenceRequest.limit 0 means this many
MAX_EVIDENCE_LIMIT = 5000  # keeps one reply a few MB at most
MAX_NOTE_CHARS = 2000
MAX_AUTHOR_CHARS = 100
_UNFINISHED = (msg.TaskState.TASK_QUEUED.name, msg.TaskState.TASK_RUNNING.name)
_log = logging.getLogger(__name__)
_UPGRADE_V1 = "sustainml_upgrade_v1"  # SQL function (blob, current type name, row) -> current blob or NULL

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
    1: [
        """
        CREATE TABLE measurements (
            id                INTEGER PRIMARY KEY,
            problem_id        TEXT    NOT NULL,
            iteration         INTEGER NOT NULL,
            task_type         TEXT    NOT NULL,
            host              TEXT    NOT NULL,
            model             TEXT    NOT NULL,
            device            TEXT    NOT NULL,            -- "cpu", "cuda:0"
            energy_method     TEXT    NOT NULL,
            cached            INTEGER NOT NULL,            -- 1 = from the hardware node's store
            received_unix_s   REAL    NOT NULL,
            measurement       BLOB    NOT NULL             -- msg.JobMeasurement, host filled in
        )
        """,
        "CREATE INDEX measurements_by_time ON measurements (received_unix_s)",
        "CREATE INDEX measurements_by_task ON measurements (problem_id, iteration, host)",
        "CREATE INDEX measurements_by_task_type ON measurements (task_type, received_unix_s)",
        "CREATE INDEX measurements_by_model ON measurements (model, received_unix_s)",
        "CREATE INDEX measurements_by_device ON measurements (device, received_unix_s)",
        "CREATE INDEX measurements_by_host ON measurements (host, received_unix_s)",
        """
        CREATE TABLE notes (
            note_id           INTEGER PRIMARY KEY,
            problem_id        TEXT    NOT NULL,
            iteration         INTEGER NOT NULL,
            model             TEXT    NOT NULL,
            device            TEXT    NOT NULL,
            host              TEXT    NOT NULL,
            created_unix_s    REAL    NOT NULL,
            note              BLOB    NOT NULL             -- msg.OptionNote, note_id and time filled in
        )
        """,
        "CREATE INDEX notes_by_option ON notes (problem_id, iteration, model, device, host)",
    ],
    # Interface version 2 (@final types, renamed types and fields) cannot read version 1's blobs: each is
    # converted (TaskStore._upgrade_blob). One that cannot be is dropped with a warning: a task without its
    # input (a stored result without its figures: the task stays, with its state), a measurement, a note.
    2: [
        f"UPDATE tasks SET user_input = COALESCE({_UPGRADE_V1}(user_input, 'UserInput',"
        " problem_id || ' iteration ' || iteration), X'')",
        "DELETE FROM tasks WHERE user_input = X''",
        f"UPDATE tasks SET result = {_UPGRADE_V1}(result, 'TaskResult', problem_id || ' iteration ' || iteration)"
        " WHERE result IS NOT NULL",
        f"UPDATE measurements SET measurement = COALESCE({_UPGRADE_V1}(measurement, 'JobMeasurement',"
        " model || ' on ' || device || ' at ' || host || ' for ' || problem_id || ' iteration ' || iteration), X'')",
        "DELETE FROM measurements WHERE measurement = X''",
        f"UPDATE notes SET note = COALESCE({_UPGRADE_V1}(note, 'OptionNote', 'note ' || note_id), X'')",
        "DELETE FROM notes WHERE note = X''",
    ],
}
SCHEMA_VERSION = len(_MIGRATIONS)


@dataclass
class ResultPage:
    """What ``TaskStore.result_page`` found: results newest first, and the ``before_unix_s`` of the next
    (older) page, 0 when there is none."""

    results: list[msg.TaskResult]
    next_before_unix_s: float


@dataclass
class Evidence:
    """What ``TaskStore.evidence`` found: measurements newest first, and the notes on the options they
    measured (same task, model, device and host), oldest first."""

    records: list[msg.EvidenceRecord]
    notes: list[msg.OptionNote]


class TaskStore(SqliteFile):
    """The orchestrator's task table on one SQLite file; safe to call from several threads.

    ``path`` may be ``":memory:"`` for a store that lives as long as the object. The row is the
    truth about a task's state: a stored ``TaskResult`` is returned with the row's current state,
    error and failed node.
    """

    migrations = _MIGRATIONS
    what = "task store"
    # The orchestrator opens it with ``holder``: two orchestrators on one store would both run its tasks.
    holder_hint = ("one orchestrator per task store: stop that one first (or let it serve), or give this one "
                   "another store (SUSTAINML_STORE_DIR, or --param store=FILE)")

    def _migrate(self) -> None:
        """The base class's migrations, with the SQL function that converts interface-version-1 blobs."""
        self._upgraded: dict[str, int] = {"converted": 0, "dropped": 0}
        self._db.create_function(_UPGRADE_V1, 3, self._upgrade_blob, deterministic=True)
        super()._migrate()
        if sum(self._upgraded.values()):
            _log.warning("task store %s: converted %d stored messages of interface version 1 to version 2, "
                         "dropped %d that could not be read", self.path, self._upgraded["converted"],
                         self._upgraded["dropped"])

    def _upgrade_blob(self, blob: bytes, type_name: str, row: str) -> bytes | None:
        """``blob`` as the current ``type_name``: converted when version-1 code wrote it, as it is when
        current code did, None (with a warning naming ``row``) when it cannot be read."""
        version = interface_version(blob)
        if version == 2:
            return blob
        try:
            if version != 1:
                raise UpgradeError(f"its header {bytes(blob[:2]).hex()} is not that of a CDR message")
            converted = upgrade_v1(blob, type_name).serialize()
        except Exception as e:  # noqa: BLE001 - any failure drops this one blob, never the whole store
            self._upgraded["dropped"] += 1
            _log.warning("task store %s: dropped the stored %s of %s: %s", self.path, type_name, row, e)
            return None
        self._upgraded["converted"] += 1
        return converted

    # ----------------------------------------------------------------------------- writing

    def new_task(self, problem: msg.UserInput) -> msg.TaskId:
        """Store ``problem`` as a QUEUED task and return its id.

        An empty ``problem.task_id.problem_id`` starts a new problem (a fresh uuid4 hex id,
        iteration 1); a known one adds that problem's next iteration. ``problem`` is not modified.

        Raises:
            InvalidProblem: the given problem_id is not in the store, or the problem is larger than
                MAX_PROBLEM_BYTES as stored.
        """
        stored = copy.deepcopy(problem)
        now = time.time()
        blob = stored.serialize()
        if len(blob) > MAX_PROBLEM_BYTES:
            raise InvalidProblem(f"the problem as stored: at most {MAX_PROBLEM_BYTES:,} bytes expected, "
                                 f"{len(blob):,} came; shorten its text or its lists")
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
            blob = stored.serialize()
            db.execute(
                "INSERT INTO tasks (problem_id, iteration, state, submitted_unix_s, updated_unix_s, user_input)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (
                    task_id.problem_id,
                    task_id.iteration,
                    msg.TaskState.TASK_QUEUED.name,
                    now,
                    now,
                    blob,
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

    def add_measurements(self, hardware: msg.HardwareMeasurement, *, task_type: str) -> None:
        """Keep every measurement of ``hardware`` as evidence for its task, of type ``task_type``. They
        replace what the same host sent for the task before (a task resumed after a restart is measured
        again); a measurement without a host takes ``hardware.host``.

        Raises:
            InvalidProblem: no task with the message's id.
        """
        task_id, now = hardware.task_id, time.time()
        measurements = [copy.deepcopy(m) for m in hardware.measurements]
        for m in measurements:
            m.host = m.host or hardware.host
        hosts = {hardware.host} | {m.host for m in measurements}
        with self._transaction() as db:
            if db.execute("SELECT 1 FROM tasks WHERE problem_id = ? AND iteration = ?",
                          (task_id.problem_id, task_id.iteration)).fetchone() is None:
                raise InvalidProblem(_no_task(task_id))
            db.executemany("DELETE FROM measurements WHERE problem_id = ? AND iteration = ? AND host = ?",
                           [(task_id.problem_id, task_id.iteration, host) for host in sorted(hosts)])
            db.executemany(
                "INSERT INTO measurements (problem_id, iteration, task_type, host, model, device, energy_method,"
                " cached, received_unix_s, measurement) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(task_id.problem_id, task_id.iteration, task_type, m.host, m.model, m.device, m.energy_method,
                  int(m.cached), now, m.serialize()) for m in measurements],
            )

    def add_note(self, note: msg.OptionNote) -> msg.OptionNote:
        """Store ``note`` on its option and return it as stored: the next ``note_id``, the time now as
        ``created_unix_s``, text and author without surrounding blanks. ``note`` is not modified.

        Raises:
            InvalidProblem: the text is empty or longer than MAX_NOTE_CHARS, the author longer than
                MAX_AUTHOR_CHARS, the task unknown, or the option (model, device, host, and region
                unless "") not among the options of the task's result.
        """
        stored = copy.deepcopy(note)
        stored.text, stored.author = note.text.strip(), note.author.strip()
        if not stored.text:
            raise InvalidProblem("the note has no text; write what others should know about this option")
        if len(stored.text) > MAX_NOTE_CHARS:
            raise InvalidProblem(f"the note has {len(stored.text)} characters; at most {MAX_NOTE_CHARS} are kept, "
                                 "shorten it")
        if len(stored.author) > MAX_AUTHOR_CHARS:
            raise InvalidProblem(f"the author name has {len(stored.author)} characters; at most {MAX_AUTHOR_CHARS}")
        task_id = note.task_id
        with self._transaction() as db:
            row = db.execute("SELECT state, result FROM tasks WHERE problem_id = ? AND iteration = ?",
                             (task_id.problem_id, task_id.iteration)).fetchone()
            if row is None:
                raise InvalidProblem(_no_task(task_id))
            state, blob = row
            options = msg.TaskResult.deserialize(blob).options if blob is not None else []
            _check_option(note, state, options)
            (last,) = db.execute("SELECT MAX(note_id) FROM notes").fetchone()
            stored.note_id = (last or 0) + 1
            stored.created_unix_s = time.time()
            db.execute(
                "INSERT INTO notes (note_id, problem_id, iteration, model, device, host, created_unix_s, note)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (stored.note_id, task_id.problem_id, task_id.iteration, note.model, note.device, note.host,
                 stored.created_unix_s, stored.serialize()),
            )
        return stored

    # ----------------------------------------------------------------------------- reading

    def get_result(self, task_id: msg.TaskId) -> msg.TaskResult | None:
        """The task's result; for a task without one yet, a result with its current state and no
        options. None when the store has no such task."""
        rows = self._select("WHERE problem_id = ? AND iteration = ?", (task_id.problem_id, task_id.iteration))
        return _result_of(rows[0]) if rows else None

    def results(self, problem_id: str = "", iteration: int = 0, limit: int = 20,
                before_unix_s: float = 0.0) -> list[msg.TaskResult]:
        """Results newest first, of one problem (``problem_id``) or of all, of one iteration or of all
        (``iteration`` 0), submitted before ``before_unix_s`` (0 = any time); at most ``limit`` of them
        (0 = 20, no upper bound: for the store's own callers; a client pages with ``result_page``).
        Tasks without a result yet appear with their current state and no options."""
        if limit < 0:
            raise ValueError(f"limit must be 0 (= {DEFAULT_RESULT_LIMIT}) or more, got {limit}")
        where, params = _result_filter(problem_id, iteration, before_unix_s)
        with self._lock:
            rows = self._db.execute(
                f"SELECT rowid FROM tasks {where} ORDER BY submitted_unix_s DESC, rowid DESC LIMIT ?",
                (*params, limit or DEFAULT_RESULT_LIMIT)).fetchall()
            return self._results_of_rows([rowid for (rowid,) in rows])

    def result_page(self, problem_id: str = "", iteration: int = 0, limit: int = 0,
                    before_unix_s: float = 0.0) -> ResultPage:
        """One page of ``results``: at most ``limit`` (0 = DEFAULT_RESULT_LIMIT, at most MAX_RESULT_LIMIT)
        tasks submitted before ``before_unix_s`` (0 = the newest), newest first, and where the next
        (older) page starts. The page is chosen on the submission index and only its rows are read and
        decoded, so a page costs the same in a store of ten tasks or of a million. It also ends before
        its stored results pass MAX_PAGE_BYTES (one task at least): a reply is encoded, sent and decoded
        whole, and one of a few MB keeps a client waiting seconds, whatever the limit asked.

        A page never splits the tasks submitted at one same instant (the cursor is a time): it ends
        before them, or, when more than ``limit`` share the page's first instant, holds all of them.

        Raises:
            InvalidProblem: ``limit`` out of range, or ``before_unix_s`` not a finite time of 0 or more.
        """
        if not 0 <= limit <= MAX_RESULT_LIMIT:
            raise InvalidProblem(f"limit must be 0 (= {DEFAULT_RESULT_LIMIT}) to {MAX_RESULT_LIMIT}, got {limit}; "
                                 "ask for the next page with before_unix_s = the reply's next_before_unix_s")
        limit = limit or DEFAULT_RESULT_LIMIT
        where, params = _result_filter(problem_id, iteration, before_unix_s)
        with self._lock:
            # The page's times, rowids and result sizes (length() reads a blob's size, not the blob), in the
            # submission index's order; one row more than the page says whether it is the last.
            rows = self._db.execute(
                f"SELECT submitted_unix_s, rowid, IFNULL(length(result), 0) FROM tasks {where}"
                " ORDER BY submitted_unix_s DESC, rowid DESC LIMIT ?", (*params, limit + 1)).fetchall()
            fit, size = 0, 0
            for _, _, blob_bytes in rows[:limit]:
                if fit and size + blob_bytes > MAX_PAGE_BYTES:
                    break
                fit, size = fit + 1, size + blob_bytes
            if fit == len(rows):
                return ResultPage(self._results_of_rows([rowid for _, rowid, _ in rows]), 0.0)
            edge = rows[fit][0]   # the first instant left out
            page = [rowid for submitted, rowid, _ in rows[:fit] if submitted > edge]
            if page:
                return ResultPage(self._results_of_rows(page), rows[len(page) - 1][0])
            # The page's first instant holds more tasks than fit: all of them, then what is older.
            where_at, params_at = _result_filter(problem_id, iteration, 0.0)
            at = " AND ".join(filter(None, (where_at.removeprefix("WHERE "), "submitted_unix_s = ?")))
            tied = self._db.execute(f"SELECT rowid FROM tasks WHERE {at} ORDER BY rowid DESC",
                                    (*params_at, edge)).fetchall()
            where_older, params_older = _result_filter(problem_id, iteration, edge)
            older = self._db.execute(f"SELECT 1 FROM tasks {where_older} LIMIT 1", params_older).fetchone()
            return ResultPage(self._results_of_rows([rowid for (rowid,) in tied]), edge if older else 0.0)

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

    def evidence(self, task_type: str = "", device: str = "", model: str = "", host: str = "", *,
                 problem_id: str = "", iteration: int = 0, limit: int = 0) -> Evidence:
        """The measurements that match every filter given ("" and 0 = any), newest first, at most
        ``limit`` (0 = DEFAULT_EVIDENCE_LIMIT), with the notes on the options they measured.

        ``device`` "cuda" matches every CUDA device ("cuda", "cuda:0", "cuda:1", ...), "cuda:0" only
        itself; the other filters match exactly.

        Raises:
            InvalidProblem: ``limit`` below 0 or above MAX_EVIDENCE_LIMIT.
        """
        if not 0 <= limit <= MAX_EVIDENCE_LIMIT:
            raise InvalidProblem(f"limit must be 0 (= {DEFAULT_EVIDENCE_LIMIT}) to {MAX_EVIDENCE_LIMIT}, got {limit}")
        where: list[str] = []
        params: list[object] = []
        for column, value in (("task_type", task_type), ("model", model), ("host", host),
                              ("problem_id", problem_id), ("iteration", iteration)):
            if value:
                where.append(f"{column} = ?")
                params.append(value)
        if device:
            # "cuda" also matches the names from "cuda:" up to, not including, "cuda;" (';' follows ':'):
            # "cuda:0", "cuda:1", ... and nothing else, and the index on device still serves.
            where.append("(device = ? OR (device >= ? AND device < ?))")
            params += [device, device + ":", device + ";"]
        params.append(limit or DEFAULT_EVIDENCE_LIMIT)
        chosen = ("FROM measurements" + (" WHERE " + " AND ".join(where) if where else "")
                  + " ORDER BY received_unix_s DESC, id DESC LIMIT ?")
        with self._lock:
            rows = self._db.execute(
                f"SELECT problem_id, iteration, task_type, received_unix_s, measurement {chosen}", params).fetchall()
            notes = self._db.execute(
                f"WITH picked AS (SELECT problem_id, iteration, model, device, host {chosen})"
                " SELECT note FROM notes n WHERE EXISTS (SELECT 1 FROM picked p WHERE p.problem_id = n.problem_id"
                " AND p.iteration = n.iteration AND p.model = n.model AND p.device = n.device AND p.host = n.host)"
                " ORDER BY note_id",
                params,
            ).fetchall()
        return Evidence(records=[_record_of(row) for row in rows],
                        notes=[msg.OptionNote.deserialize(blob) for (blob,) in notes])

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

    def _results_of_rows(self, rowids: list[int]) -> list[msg.TaskResult]:
        """The results of the tasks at ``rowids``, in that order. Caller holds the lock."""
        if not rowids:
            return []
        rows = self._db.execute(
            "SELECT rowid, problem_id, iteration, state, submitted_unix_s, updated_unix_s, result, error, failed_node"
            f" FROM tasks WHERE rowid IN ({', '.join('?' * len(rowids))})", rowids).fetchall()
        by_rowid = {row[0]: row[1:] for row in rows}
        return [_result_of(by_rowid[rowid]) for rowid in rowids if rowid in by_rowid]

    def _select(self, clause: str, params: tuple[object, ...]) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._db.execute(
                "SELECT problem_id, iteration, state, submitted_unix_s, updated_unix_s, result, error, failed_node"
                f" FROM tasks {clause}",
                params,
            ).fetchall()


def _result_filter(problem_id: str, iteration: int, before_unix_s: float) -> tuple[str, tuple[object, ...]]:
    """The WHERE clause (or "") and its parameters that pick the tasks of ``results`` and ``result_page``."""
    if not (math.isfinite(before_unix_s) and before_unix_s >= 0):
        raise InvalidProblem(f"before_unix_s must be a time in seconds since the epoch (0 = the newest), "
                             f"got {before_unix_s!r}")
    where: list[str] = []
    params: list[object] = []
    if problem_id:
        where.append("problem_id = ?")
        params.append(problem_id)
    if iteration:
        where.append("iteration = ?")
        params.append(iteration)
    if before_unix_s:
        where.append("submitted_unix_s < ?")
        params.append(before_unix_s)
    return ("WHERE " + " AND ".join(where) if where else ""), tuple(params)


def _no_task(task_id: msg.TaskId) -> str:
    return f"no task with id {task_id.problem_id!r} iteration {task_id.iteration}; submit the problem first"


def _option_name(model: str, device: str, host: str, region: str = "") -> str:
    return f"{model} on {device} at {host}" + (f" in {region}" if region else "")


def _check_option(note: msg.OptionNote, state: str, options: list[msg.TaskOption]) -> None:
    """Raise InvalidProblem unless ``note`` names one of ``options``, saying which ones there are."""
    task = f"task {note.task_id.problem_id!r} iteration {note.task_id.iteration}"
    if not options:
        raise InvalidProblem(f"{task} has no options to note ({status_name(msg.TaskState[state])}); "
                             "notes attach to the options of a finished result")
    same = [o for o in options if (o.model, o.device, o.host) == (note.model, note.device, note.host)]
    if not same:
        names = list(dict.fromkeys(_option_name(o.model, o.device, o.host) for o in options))
        more = f" and {len(names) - 10} more" if len(names) > 10 else ""
        raise InvalidProblem(f"{task} has no option {_option_name(note.model, note.device, note.host)!r}; "
                             f"its options are {', '.join(names[:10])}{more}")
    if note.region and note.region not in {o.region for o in same}:
        regions = ", ".join(sorted({o.region for o in same}))
        raise InvalidProblem(f"{task} has {_option_name(note.model, note.device, note.host)} in {regions}, "
                             f"not in {note.region!r}; leave region empty to note it in every region")


def _record_of(row: tuple[Any, ...]) -> msg.EvidenceRecord:
    problem_id, iteration, task_type, received_unix_s, blob = row
    return msg.EvidenceRecord(task_id=msg.TaskId(problem_id=problem_id, iteration=iteration), task_type=task_type,
                              received_unix_s=received_unix_s, measurement=msg.JobMeasurement.deserialize(blob))


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

