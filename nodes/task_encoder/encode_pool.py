"""Encoding in worker processes, so that no input holds the task encoder: each encode has a time limit,
and one that runs past it is stopped by killing its worker, whose task then fails with one line.

Each worker is a process of its own (started with ``spawn``: nothing of the node's DDS threads is
copied into it) that loads the sentence model once and then encodes one problem at a time. With two
workers (the default) the next task is encoded at once by the other while a killed one is replaced.
Problems and encoded tasks cross the pipe as their CDR bytes, the same bytes DDS carries.

A worker ignores SIGINT (the launcher's Ctrl-C goes to the node, which closes the pool), dies with the
node (it watches its parent pid, and the end of its pipe) and never touches DDS.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import queue
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from sustainml import msg
from sustainml.exceptions import InvalidProblem, SustainMLError, TaskCancelled

__all__ = ["EncodePool", "EncodeTimeout", "EncoderUnavailable", "PoolSettings"]

log = logging.getLogger("sustainml.task_encoder")

_CALLERS = 3   # threads of the node that encode at once: the task worker and the service's two
_STOP_CHECK_S = 0.2   # how often a wait for a worker looks whether its task still matters (Units: s)


class EncodeTimeout(SustainMLError):
    """Raised when an encode ran past its time limit (its worker was stopped), or no worker was free
    within it."""


class EncoderUnavailable(SustainMLError):
    """Raised when an encoder worker died or could not start; the message says why."""


@dataclass(frozen=True)
class PoolSettings:
    """What a worker needs to encode as the node would: where datasets are read from, how large."""

    data_dir: str
    max_dataset_mb: float
    workers: int = 2
    timeout_s: float = 30.0        # one encode, dataset profile included (Units: s)
    start_timeout_s: float = 120.0  # a worker's start, sentence model included (Units: s)


class _Worker:
    def __init__(self, settings: PoolSettings) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(target=_serve, args=(child, settings.data_dir, settings.max_dataset_mb),
                                   name="task_encoder-worker", daemon=True)
        self.process.start()
        child.close()

    def wait_ready(self, timeout_s: float) -> float:
        """Seconds the worker took to load its model; raises EncoderUnavailable if it did not."""
        try:
            if not self.conn.poll(timeout_s):
                raise EncoderUnavailable(f"an encoder worker did not load its model within {timeout_s:g} s")
            kind, value = self.conn.recv()
        except (EOFError, OSError):
            raise EncoderUnavailable("an encoder worker died while loading its model "
                                     f"(exit code {self.process.exitcode})") from None
        if kind != "ready":
            raise EncoderUnavailable(f"an encoder worker could not start: {value}")
        return float(value)

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            self.conn.close()
        if self.process.is_alive():
            self.process.kill()
        self.process.join(timeout=5)


class EncodePool:
    """``encode(problem)`` in one of ``settings.workers`` worker processes, within ``settings.timeout_s``."""

    def __init__(self, settings: PoolSettings) -> None:
        if settings.workers < 1 or not settings.timeout_s > 0:
            raise InvalidProblem(f"task encoder: workers >= 1 and encode_timeout_s > 0 expected, "
                                 f"{settings.workers} and {settings.timeout_s} came")
        self.settings = settings
        self._idle: queue.Queue[_Worker] = queue.Queue()
        self._all: set[_Worker] = set()
        self._lock = threading.Lock()
        self._closed = False

    def start(self) -> float:
        """Start the first worker and wait until it has its model loaded; the others start after it,
        one at a time in the background (on a small machine, loading them together only slows the
        first). Units: s the first took to load."""
        first = self._spawn()
        took = first.wait_ready(self.settings.start_timeout_s)
        self._idle.put(first)
        if self.settings.workers > 1:
            threading.Thread(target=self._start_more, args=(self.settings.workers - 1,), daemon=True,
                             name="task_encoder-worker-start").start()
        return took

    def encode(self, problem: msg.UserInput, *, complete: bool,
               stopped: Callable[[], str] = lambda: "") -> msg.EncodedTask:
        """The encoded task of ``problem`` (``complete``: also require what the pipeline needs to
        price it). Raises ``InvalidProblem`` (and other ``SustainMLError``) for the input's faults,
        ``EncodeTimeout`` past the time limit, ``EncoderUnavailable`` when a worker died, and
        ``TaskCancelled`` as soon as ``stopped()`` says why the work is of no use any more (the task
        ended, the node stops): the worker is then stopped too."""
        timeout_s = self.settings.timeout_s
        # Every encode ends within timeout_s (it is stopped there), so a caller waits for a worker at
        # most as long as the callers before it take: the node has three (its task thread and two
        # service threads).
        wait_s = _CALLERS * timeout_s
        try:
            worker = self._idle.get(timeout=wait_s)
        except queue.Empty:
            raise EncodeTimeout(f"no encoder worker was free within {wait_s:g} s (all "
                                f"{self.settings.workers} busy); try again") from None
        left = timeout_s
        try:
            worker.conn.send_bytes(bytes([1 if complete else 0]) + problem.serialize())
            deadline = time.monotonic() + left
            while not worker.conn.poll(min(_STOP_CHECK_S, max(0.0, deadline - time.monotonic()))):
                why = stopped()
                if why:
                    self._replace(worker, f"its task {why}")
                    raise TaskCancelled(f"encoding stopped: the task {why}")
                if time.monotonic() >= deadline:
                    self._replace(worker, "it ran past the time limit")
                    raise EncodeTimeout(
                        f"encoding took longer than {timeout_s:g} s (the task encoder's encode_timeout_s) and was "
                        "stopped: shorten the text or point to a smaller dataset")
            kind, value = worker.conn.recv()
        except (EOFError, OSError, BrokenPipeError):
            code = worker.process.exitcode
            self._replace(worker, "it died")
            raise EncoderUnavailable(f"the encoder worker died (exit code {code}) while encoding this "
                                     "problem; it was replaced") from None
        self._idle.put(worker)
        if kind == "ok":
            return msg.EncodedTask.deserialize(value)
        if kind == "refused":
            raise InvalidProblem(value)
        raise SustainMLError(f"internal error in the task encoder: {value}")

    def close(self) -> None:
        with self._lock:
            self._closed = True
            workers, self._all = list(self._all), set()
        for worker in workers:
            worker.stop()

    # ---------------------------------------------------------------- workers
    def _spawn(self) -> _Worker:
        worker = _Worker(self.settings)
        with self._lock:
            self._all.add(worker)
            closed = self._closed
        if closed:
            self._forget(worker)
            raise EncoderUnavailable("the encoder is shutting down")
        return worker

    def _forget(self, worker: _Worker) -> None:
        with self._lock:
            self._all.discard(worker)
        worker.stop()

    def _replace(self, worker: _Worker, why: str) -> None:
        """Stop ``worker`` now and start another in the background."""
        log.warning("encoder worker %d stopped: %s; starting another", worker.process.pid, why)
        self._forget(worker)
        with self._lock:
            if self._closed:
                return
        threading.Thread(target=self._start_one, daemon=True, name="task_encoder-worker-start").start()

    def _start_more(self, count: int) -> None:
        for _ in range(count):
            self._start_one()

    def _start_one(self) -> None:
        try:
            worker = self._spawn()
        except EncoderUnavailable:
            return
        self._ready_later(worker)

    def _ready_later(self, worker: _Worker) -> None:
        try:
            took = worker.wait_ready(self.settings.start_timeout_s)
        except EncoderUnavailable as e:
            with self._lock:
                closed = self._closed
            if not closed:
                log.error("%s", e)
            self._forget(worker)
            return
        with self._lock:
            closed = self._closed
        if closed:
            self._forget(worker)
            return
        log.info("encoder worker %d ready (model loaded in %.1f s)", worker.process.pid, took)
        self._idle.put(worker)


# -------------------------------------------------------------------- in the worker process
def _die_with_parent() -> None:
    """Exit as soon as the node's process is gone (its pid no longer this process's parent), even in
    the middle of an encode. Not PR_SET_PDEATHSIG: that fires when the *thread* that started the
    worker ends, and a replacement worker is started from a short-lived thread."""
    parent = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(1.0)
            if os.getppid() != parent:
                os._exit(0)

    threading.Thread(target=watch, daemon=True, name="parent-watch").start()


def _serve(conn: Connection, data_dir: str, max_dataset_mb: float) -> None:
    """A worker's life: load the model, then answer one problem at a time until the pipe closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with_parent()
    try:
        from sustainml.datasets import DataPolicy

        from .encoding import warm_up
        policy = DataPolicy.from_params(data_dir, max_dataset_mb)
        conn.send(("ready", warm_up()))
    except Exception as e:  # noqa: BLE001 - said to the node, which logs it
        conn.send(("failed", f"{type(e).__name__}: {e}"))
        return
    while True:
        try:
            request = conn.recv_bytes()
        except (EOFError, OSError):
            return
        conn.send(_answer(request, policy))


def _answer(request: bytes, policy: Any) -> tuple[str, Any]:
    from sustainml.datasets import profile_dataset

    from .encoding import encode, require_complete
    try:
        complete, problem = bool(request[0]), msg.UserInput.deserialize(request[1:])
        profile = None
        if problem.dataset.path:
            profile = profile_dataset(problem.dataset.path, policy=policy,
                                      target_column=problem.dataset.target_column)
        task = encode(problem, profile=profile)
        if complete:
            require_complete(task)
        return ("ok", task.serialize())
    except SustainMLError as e:
        return ("refused", str(e))
    except Exception as e:  # noqa: BLE001 - a bug: the node reports it as an internal error
        logging.getLogger("sustainml.task_encoder").exception("encoding failed")
        return ("internal", f"{type(e).__name__}: {e}")
