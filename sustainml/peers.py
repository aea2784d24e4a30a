"""Who is who on the bus: which participant is which node, and whose messages to believe.

Anyone who can join the DDS domain can write any topic, and a message's fields (a node's name, a
host) are whatever its writer put there. What a writer cannot choose is the participant it writes
from: the bus reports it with each sample (``Participant.subscribe(..., with_sender=True)``). So a
node's identity is the participant its status heartbeats come from, bound to the node's name when
it is first seen:

- a second participant claiming a name whose holder still heartbeats is refused (logged once per
  participant); once the holder has been silent for ``stale_s`` (it died; its restart comes from a
  new participant), the name moves to the newcomer;
- a name that the operator did not admit (``SUSTAINML_ADMIT``: comma-separated names or shell-style
  patterns, which the launcher sets to the nodes of its launch file) is not a node at all: its
  status is ignored, so it never holds a task, and its outputs are refused;
- an output topic is believed only from participants of the kinds that produce it
  (``PRODUCERS``): a hardware measurement from a hardware node, a result from the orchestrator...

This is defence in depth for an open bus, not authentication: a participant that claims an admitted
name before the real node starts holds it. DDS Security (``sustainml.security``) closes that: there a
participant cannot join without the operator's certificate, nor write a topic its permissions do
not list.
"""

from __future__ import annotations

import fnmatch
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from . import msg, topics
from .limits import check_message

__all__ = ["Peers", "Peer", "PRODUCERS", "admitted_from_env", "announce", "ORCHESTRATOR"]

ORCHESTRATOR = "orchestrator"
ENCODER, PROVIDER, HARDWARE, CARBON = "task_encoder", "model_provider", "hw_constraints", "carbon_tracker"

#: The node kinds whose messages on a topic are believed. The orchestrator re-sends stage inputs to
#: a node that restarted mid-task, so it may write those too. Topics not listed (stage records and
#: training forecasts from users' own pipelines, service requests) are open to any participant.
PRODUCERS: dict[str, frozenset[str]] = {
    topics.USER_INPUT.name: frozenset({ORCHESTRATOR}),
    topics.ENCODED_TASK.name: frozenset({ENCODER, ORCHESTRATOR}),
    topics.MODEL_CANDIDATES.name: frozenset({PROVIDER, ORCHESTRATOR}),
    topics.HARDWARE_MEASUREMENT.name: frozenset({HARDWARE, ORCHESTRATOR}),
    topics.HARDWARE_INVENTORY.name: frozenset({HARDWARE}),
    topics.CARBON_FOOTPRINT.name: frozenset({CARBON}),
    topics.TASK_STATUS.name: frozenset({ORCHESTRATOR}),
    topics.TASK_RESULT.name: frozenset({ORCHESTRATOR}),
    topics.NODE_CONTROL.name: frozenset({ORCHESTRATOR}),
}

#: How long a message from a participant not identified yet is held, waiting for its first status
#: heartbeat (they come every second; a node's first output may overtake it; a restarted node's
#: name is only handed over once its predecessor has been silent for STALE_S), Units: s.
IDENTIFY_WITHIN_S = 10.0
#: A name's holder silent this long may be replaced by another participant (a restart), Units: s.
STALE_S = 5.0


def admitted_from_env() -> tuple[str, ...]:
    """The node names (or shell-style patterns) the operator admits: ``SUSTAINML_ADMIT``; () = any."""
    raw = os.environ.get("SUSTAINML_ADMIT", "")
    return tuple(p.strip() for p in raw.split(",") if p.strip())


@dataclass
class Peer:
    name: str
    kind: str
    host: str
    pid: int
    participant: str
    last_heard: float        # monotonic seconds


@dataclass
class _Held:
    topic: str
    deliver: Callable[[], None]
    since: float


class Peers:
    """The nodes on the bus, keyed by name and by participant; thread-safe. ``own`` is this
    process's participant GUID and ``own_kind`` its node kind: its own messages are believed as
    that kind's."""

    def __init__(self, *, own: str, own_kind: str = "", admit: Iterable[str] | None = None,
                 log: logging.Logger | None = None, stale_s: float = STALE_S,
                 identify_within_s: float = IDENTIFY_WITHIN_S) -> None:
        self.own, self.own_kind = own, own_kind
        self.admit = tuple(admit) if admit is not None else admitted_from_env()
        self.log = log or logging.getLogger("sustainml.peers")
        self.stale_s, self.identify_within_s = stale_s, identify_within_s
        self._lock = threading.Lock()
        self._by_name: dict[str, Peer] = {}
        self._by_participant: dict[str, Peer] = {}
        self._held: dict[str, list[_Held]] = {}
        self._warned: set[tuple[str, str]] = set()
        #: How many messages were refused, by reason (for logs, metrics and tests).
        self.refused: dict[str, int] = {}

    def admitted(self, name: str) -> bool:
        return not self.admit or any(fnmatch.fnmatchcase(name, pattern) for pattern in self.admit)

    # ---------------------------------------------------------------- statuses
    def on_status(self, status: msg.NodeStatus, sender: str, now: float | None = None) -> bool:
        """Record a node's heartbeat; whether it is believed (the caller ignores it otherwise)."""
        now = time.monotonic() if now is None else now
        release: list[_Held] = []
        with self._lock:
            if not sender:      # the binding cannot tell senders apart: see sustainml._dds_compat
                return True
            if not self.admitted(status.node):
                self._refuse_once("not admitted", sender,
                                  f"ignoring node {status.node!r} (kind {status.kind}, host {status.host}, "
                                  f"participant {sender}): not among the admitted nodes "
                                  f"(SUSTAINML_ADMIT={','.join(self.admit)}); it holds no task and its "
                                  "outputs are refused")
                return False
            if not self.admit and (status.kind or status.node) == ORCHESTRATOR and status.node != ORCHESTRATOR:
                self._refuse_once("second orchestrator", sender,
                                  f"ignoring an orchestrator named {status.node!r} (participant {sender}): "
                                  f"only the one named {ORCHESTRATOR!r} is believed unless SUSTAINML_ADMIT "
                                  "names another")
                return False
            holder = self._by_name.get(status.node)
            if holder is not None and holder.participant != sender:
                if now - holder.last_heard < self.stale_s:
                    self._refuse_once("name taken", sender,
                                      f"refused a status of node {status.node!r} from participant {sender}: "
                                      f"that name is held by participant {holder.participant} (pid "
                                      f"{holder.pid} on {holder.host}), which is alive")
                    return False
                self.log.info("node %s now comes from participant %s (the previous one, pid %d on %s, "
                              "went silent)", status.node, sender, holder.pid, holder.host)
                self._by_participant.pop(holder.participant, None)
            other = self._by_participant.get(sender)
            if other is not None and other.name != status.node:
                self._refuse_once("two names", sender,
                                  f"refused a status of node {status.node!r} from participant {sender}: "
                                  f"that participant is node {other.name!r}")
                return False
            peer = Peer(status.node, status.kind or status.node, status.host, int(status.pid), sender, now)
            self._by_name[status.node] = self._by_participant[sender] = peer
            release = self._held.pop(sender, [])
        for held in release:
            if self.believes(held.topic, sender):
                held.deliver()
        return True

    def forget(self, name: str) -> None:
        """The node left the bus (its status instance lost its writers)."""
        with self._lock:
            peer = self._by_name.pop(name, None)
            if peer is not None:
                self._by_participant.pop(peer.participant, None)

    def kind_of(self, sender: str) -> str:
        """The kind of node a participant is ("" = not a known node)."""
        if sender and sender == self.own:
            return self.own_kind
        with self._lock:
            peer = self._by_participant.get(sender)
            return peer.kind if peer else ""

    def node_of(self, sender: str) -> Peer | None:
        with self._lock:
            return self._by_participant.get(sender)

    def participant_of(self, name: str) -> str:
        with self._lock:
            peer = self._by_name.get(name)
            return peer.participant if peer else ""

    def participants_of_kind(self, kind: str) -> set[str]:
        with self._lock:
            found = {p.participant for p in self._by_participant.values() if p.kind == kind}
        return found | ({self.own} if kind == self.own_kind and self.own else set())

    # ---------------------------------------------------------------- messages
    def believes(self, topic: str, sender: str) -> bool:
        """Whether a message on ``topic`` from ``sender`` comes from a node that may write it."""
        kinds = PRODUCERS.get(topic)
        if kinds is None or not sender:
            return True
        return self.kind_of(sender) in kinds

    def admit_message(self, topic: str, sender: str, deliver: Callable[[], None],
                      now: float | None = None, *, message: Any = None) -> None:
        """Deliver a message now if its sender may write ``topic``; hold it a while if the sender is
        not identified yet (its first heartbeat may come after its first output); else refuse it.
        With ``message``, one outside the input limits (``sustainml.limits``) is refused first."""
        now = time.monotonic() if now is None else now
        if message is not None:
            problem = check_message(message)
            if problem is not None:
                with self._lock:
                    self._refuse_once("out of bounds", sender, f"refused a message on {topic} from participant "
                                                              f"{sender or '(unknown)'}: {problem}")
                return
        if self.believes(topic, sender):
            deliver()
            return
        with self._lock:
            if sender not in self._by_participant:
                held = self._held.setdefault(sender, [])
                if len(held) < 256:
                    held.append(_Held(topic, deliver, now))
                    return
            peer = self._by_participant.get(sender)
        self._refuse(topic, sender, peer)

    def expire(self, now: float | None = None) -> None:
        """Refuse the held messages of participants that never identified themselves in time."""
        now = time.monotonic() if now is None else now
        expired: list[tuple[str, _Held]] = []
        with self._lock:
            for sender, waiting in list(self._held.items()):
                keep = [h for h in waiting if now - h.since < self.identify_within_s]
                expired += [(sender, h) for h in waiting if now - h.since >= self.identify_within_s]
                if keep:
                    self._held[sender] = keep
                else:
                    del self._held[sender]
        for sender, held in expired:
            self._refuse(held.topic, sender, None)

    def _refuse(self, topic: str, sender: str, peer: Peer | None) -> None:
        who = (f"node {peer.name!r} (kind {peer.kind})" if peer is not None
               else "a participant that is no admitted node")
        with self._lock:
            self._refuse_once(f"{topic}", sender,
                              f"refused a message on {topic} from {who}, participant {sender}: only "
                              f"{'/'.join(sorted(PRODUCERS.get(topic, ())))} may write it")

    def _refuse_once(self, reason: str, sender: str, line: str) -> None:
        """Caller holds the lock. Count every refusal; log the first per participant and reason."""
        self.refused[reason] = self.refused.get(reason, 0) + 1
        if (reason, sender) not in self._warned:
            self._warned.add((reason, sender))
            if len(self._warned) > 10000:
                self._warned.clear()
            self.log.warning("%s", line)

    def describe(self) -> list[dict[str, Any]]:
        with self._lock:
            return [vars(p).copy() for p in self._by_name.values()]


def announce(bus: Any, name: str, kind: str) -> Any:
    """Announce the participant ``bus`` as node ``name`` of ``kind`` with one status (kept for late
    joiners), so that nodes believe what it writes as that kind's: for a tool or a test that stands
    in for a node (e.g. a test publishing a task's inputs as the orchestrator would). Returns the
    status publisher; a process that lives long should keep announcing (nodes heartbeat each second)."""
    publisher = bus.publisher(topics.NODE_STATUS)
    publisher.publish(msg.NodeStatus(node=name, kind=kind, host=bus.host, pid=os.getpid(),
                                     state=msg.NodeState.NODE_IDLE, heartbeat_unix_s=time.time(),
                                     started_unix_s=time.time()))
    return publisher
