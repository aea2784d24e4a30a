"""The client's own bookkeeping, without DDS: the results it keeps stay bounded however many tasks it
hears of, a waiter never loses its task's result, and threads asking for one service at once share
one service client."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from sustainml import client as client_module
from sustainml import msg
from sustainml.client import Client
from sustainml.node import task_key


class FakeBus:
    """Stands in for the DDS participant: the client's subscriptions are kept, so a test can deliver."""

    guid = "fake-participant"
    host = "fake-host"

    def __init__(self, *_: Any, **__: Any) -> None:
        self.callbacks: dict[str, Any] = {}

    def publisher(self, topic: Any) -> object:
        return object()

    def subscribe(self, topic: Any, callback: Any, **_: Any) -> object:
        self.callbacks[topic.name] = callback
        return object()

    def close(self) -> None:
        pass


@pytest.fixture
def client(monkeypatch: pytest.MonkeyPatch) -> Client:
    monkeypatch.setattr(client_module, "Participant", FakeBus)
    return Client()


def result(problem_id: str, state: msg.TaskState = msg.TaskState.TASK_DONE) -> msg.TaskResult:
    return msg.TaskResult(task_id=msg.TaskId(problem_id=problem_id, iteration=1), state=state)


def test_the_results_kept_are_bounded_and_the_oldest_go_first(client: Client) -> None:
    limit = client_module.MAX_KEPT_RESULTS
    for i in range(limit + 50):
        client._on_result(result(f"p{i}"))
    assert len(client._results) == limit
    assert client._results.get(task_key(msg.TaskId("p0", 1))) is None   # the least recently updated went
    newest = client._results.get(task_key(msg.TaskId(f"p{limit + 49}", 1)))
    assert newest is not None and newest.task_id.problem_id == f"p{limit + 49}"
    with pytest.raises(ValueError, match="at least 1"):
        client_module._KeptResults(0)


def test_an_update_makes_a_task_recent_again() -> None:
    kept = client_module._KeptResults(limit=2)
    kept.put(("a", 1), result("a"))
    kept.put(("b", 1), result("b"))
    kept.put(("a", 1), result("a"))   # a new revision of a
    kept.put(("c", 1), result("c"))
    assert kept.get(("b", 1)) is None and kept.get(("a", 1)) is not None and len(kept) == 2


def test_a_task_someone_waits_for_keeps_its_result_whatever_else_arrives(client: Client) -> None:
    got: list[msg.TaskResult] = []
    waiter = threading.Thread(target=lambda: got.append(client.wait_result(msg.TaskId("mine", 1), timeout_s=30)))
    waiter.start()
    deadline = time.monotonic() + 10
    while task_key(msg.TaskId("mine", 1)) not in client._results._held and time.monotonic() < deadline:
        time.sleep(0.01)   # until the waiter holds its task
    with client._lock:   # the waiter cannot look before every result below has arrived
        client._on_result(result("mine"))
        for i in range(client_module.MAX_KEPT_RESULTS + 10):
            client._on_result(result(f"other{i}"))
    waiter.join(timeout=30)
    assert [r.task_id.problem_id for r in got] == ["mine"]
    assert not client._results._held   # released once answered


def test_threads_asking_for_a_service_at_once_share_one_service_client(
        client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[object] = []

    class SlowServiceClient:
        def __init__(self, bus: object, spec: object, **_: object) -> None:
            time.sleep(0.05)   # creating DDS entities takes a while: the window two threads would share
            made.append(self)

    monkeypatch.setattr(client_module, "ServiceClient", SlowServiceClient)
    start = threading.Barrier(8)
    services: list[object] = []

    def ask() -> None:
        start.wait()
        services.append(client._service(client_module.topics.SUBMIT))

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert len(made) == 1 and services == [made[0]] * 8
