"""The thin layer over Cyclone DDS that nodes and clients share: typed publishers, subscriptions and
request/reply. Nothing outside this module and ``node.py`` touches cyclonedds entities directly, and
no cyclonedds exception type leaks out of here."""

import itertools
import logging
import os
import queue
import socket
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Generic, TypeVar

from cyclonedds.core import (DDSException, GuardCondition, InstanceState, ReadCondition, SampleState,
                             ViewState, WaitSet)
from cyclonedds.domain import DomainParticipant
from cyclonedds.util import duration
from cyclonedds.pub import DataWriter
from cyclonedds.sub import DataReader
from cyclonedds.topic import Topic

from . import _dds_compat
from .config import RuntimeConfig, apply_dds_config, load_config
from .exceptions import RequestTimeout, SustainMLError
from .limits import check_message
from .topics import ServiceReply, ServiceRequest, ServiceSpec, TopicSpec

__all__ = ["Participant", "Publisher", "Subscription", "ServiceClient", "Gone"]

T = TypeVar("T")
ReqT = TypeVar("ReqT", bound=ServiceRequest)
RepT = TypeVar("RepT", bound=ServiceReply)

log = logging.getLogger("sustainml.bus")


def _wait_until(condition: Callable[[], bool], timeout_s: float, poll_s: float = 0.02) -> bool:
    """Poll ``condition`` until it holds or ``timeout_s`` passes (DDS offers no matched-event we
    could wait on from Python without a listener per entity); whether it held."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() >= deadline:
            return False
        time.sleep(poll_s)
    return True


class Gone:
    """Delivered to a subscription callback that asked for it when a keyed instance lost its last
    writer (for node status: the node's process died or left). ``key`` holds the key fields."""

    def __init__(self, key: Any) -> None:
        self.key = key

    def __repr__(self) -> str:
        return f"Gone({self.key!r})"


class Publisher(Generic[T]):
    """Writes messages of one type on one topic."""

    def __init__(self, writer: DataWriter[T], spec: TopicSpec[T]) -> None:
        self._writer = writer
        self.spec = spec

    def publish(self, message: T) -> None:
        if not isinstance(message, self.spec.type):
            raise TypeError(f"{self.spec.name} carries {self.spec.type.__name__}, "
                            f"not {type(message).__name__}")
        try:
            self._writer.write(message)
        except DDSException as e:
            raise SustainMLError(f"publishing on {self.spec.name} failed: {e}") from e

    def unregister(self, message: T) -> None:
        """Forget the instance (key) of ``message`` so transient-local history stays bounded."""
        try:
            self._writer.unregister_instance(message)
        except DDSException as e:
            log.debug("unregister on %s failed: %s", self.spec.name, e)

    def matched(self) -> int:
        return _dds_compat.matched_count(self._writer)

    def wait_matched(self, timeout_s: float) -> bool:
        """Wait until a reader has matched (discovery takes a moment; a volatile message written
        before it is lost to that reader), at most ``timeout_s``; whether one has."""
        return _wait_until(lambda: self.matched() > 0, timeout_s)


class Subscription(Generic[T]):
    """Calls ``callback(message)`` for each message on a topic, on the participant's dispatcher
    thread: callbacks must be short (enqueue work, don't do it)."""

    def __init__(self, participant: "Participant", spec: TopicSpec[T], callback: Callable[..., None],
                 *, on_gone: Callable[[Gone], None] | None = None, with_sender: bool = False) -> None:
        self.spec = spec
        self._callback = callback
        self._on_gone = on_gone
        self._with_sender = with_sender
        self._senders: OrderedDict[int, str] = OrderedDict()   # publication handle -> its participant
        self._lock = threading.Lock()
        self._reader = DataReader(participant.dp, participant.topic(spec), qos=spec.qos)
        self._alive = ReadCondition(self._reader, SampleState.Any | ViewState.Any | InstanceState.Alive)
        self._not_alive = ReadCondition(self._reader, SampleState.Any | ViewState.Any
                                        | InstanceState.NotAliveDisposed | InstanceState.NotAliveNoWriters)

    def drain(self) -> None:
        """Dispatch every sample waiting in the reader (called by the participant's dispatcher)."""
        self._drain(self._reader)

    def _drain(self, reader: DataReader[Any]) -> None:
        with self._lock:
            # Samples of live instances first, in batches. Then those of instances that lost their
            # writers one at a time: for a keyless type, cyclonedds-python 11.0.1 fails to decode
            # the key of the "no writers" notification, and a failing batch would lose every
            # valid sample taken with it.
            while self._take(reader, 64, self._alive):
                pass
            while self._take(reader, 1, self._not_alive):
                pass

    def _take(self, reader: DataReader[Any], n: int, condition: ReadCondition) -> bool:
        """Take and dispatch up to ``n`` samples; False once there are none left."""
        try:
            samples = reader.take(N=n, condition=condition)
        except DDSException as e:
            log.warning("reading %s failed: %s", self.spec.name, e)
            return False
        except Exception as e:  # noqa: BLE001 - an undecodable notification, see _drain
            log.debug("skipped an undecodable sample on %s: %s", self.spec.name, e)
            return True
        for sample in samples:
            info = sample.sample_info
            try:
                if info.valid_data:
                    if self._with_sender:
                        self._callback(sample, self._sender(reader, info.publication_handle))
                    else:
                        self._callback(sample)
                elif self._on_gone and info.instance_state != InstanceState.Alive:
                    self._on_gone(Gone(_dds_compat.key_sample(sample, self.spec.type)))
            except Exception:  # a callback bug must not kill the DDS listener thread
                log.exception("callback for %s failed", self.spec.name)
        return bool(samples)

    def _sender(self, reader: DataReader[Any], handle: int) -> str:
        """The participant (its GUID) whose writer sent a sample: who sent it, as the bus knows it,
        not as the message claims. "" when the binding cannot tell (see ``_dds_compat``)."""
        sender = self._senders.get(handle)
        if sender is None:
            sender = _dds_compat.writer_participant(reader, handle)
            if sender:   # an unknown one is asked again next time: discovery may catch up
                self._senders[handle] = sender
                while len(self._senders) > 4096:
                    self._senders.popitem(last=False)
        return sender

    def matched(self) -> int:
        return _dds_compat.matched_count(self._reader)

    def wait_matched(self, timeout_s: float) -> bool:
        """Wait until a writer has matched, at most ``timeout_s``; whether one has."""
        return _wait_until(lambda: self.matched() > 0, timeout_s)


class Participant:
    """One process's membership of the pipeline's DDS domain: the participant and its topics."""

    def __init__(self, config: RuntimeConfig | None = None, *, identity: str = "client") -> None:
        """``identity``: who this process is on a secured bus (a node's name; "client" for front
        ends), which picks its certificate when DDS Security is configured."""
        self.config = config or load_config()
        self.identity = identity
        apply_dds_config(self.config, identity=identity)
        try:
            self.dp = DomainParticipant(self.config.domain_id)
        except DDSException as e:
            raise SustainMLError(
                f"cannot join DDS domain {self.config.domain_id}: {e}; check the Cyclone XML "
                f"(CYCLONEDDS_URI={os.environ.get('CYCLONEDDS_URI', '')[:80]!r})") from e
        self.host = socket.gethostname()
        #: This participant's GUID: what ``with_sender`` subscriptions report for its own writers.
        self.guid = str(self.dp.guid)
        self._topics: dict[str, Topic[Any]] = {}
        self._subscriptions: list[Subscription[Any]] = []
        self._lock = threading.Lock()
        self._closed = threading.Event()  # set by close(), from any thread
        # One thread per participant takes the samples and runs the callbacks. Not DDS listeners:
        # cyclonedds-python holds the GIL inside write(), and delivering to a local reader whose
        # listener waits for the GIL deadlocks the process (upstream issue #208). A WaitSet wait
        # releases the GIL, and a write only signals it.
        self._waitset = WaitSet(self.dp)
        self._wake = GuardCondition(self.dp)
        self._waitset.attach(self._wake)
        self._dispatcher = threading.Thread(target=self._dispatch, name="dds-dispatch", daemon=True)
        self._dispatcher.start()

    def _dispatch(self) -> None:
        while not self._closed.is_set():
            self._waitset.wait(duration(milliseconds=200))
            self._wake.set(False)
            with self._lock:
                subscriptions = list(self._subscriptions)
            for subscription in subscriptions:
                if self._closed.is_set():
                    return
                subscription.drain()

    def topic(self, spec: TopicSpec[Any]) -> Topic[Any]:
        with self._lock:
            if spec.name not in self._topics:
                self._topics[spec.name] = Topic(self.dp, spec.name, spec.type)
            return self._topics[spec.name]

    def publisher(self, spec: TopicSpec[T]) -> Publisher[T]:
        try:
            return Publisher(DataWriter(self.dp, self.topic(spec), qos=spec.qos), spec)
        except DDSException as e:   # e.g. a secured bus whose permissions do not let this identity write it
            raise SustainMLError(f"cannot write {spec.name} as {self.identity!r}: {e}") from e

    def subscribe(self, spec: TopicSpec[T], callback: Callable[..., None], *,
                  on_gone: Callable[[Gone], None] | None = None, with_sender: bool = False) -> Subscription[T]:
        """Call ``callback(message)`` for each message, or ``callback(message, sender)`` with
        ``with_sender``: the GUID of the participant that wrote it (see ``sustainml.peers``)."""
        try:
            subscription = Subscription(self, spec, callback, on_gone=on_gone, with_sender=with_sender)
        except DDSException as e:   # e.g. a secured bus whose permissions do not let this identity read it
            raise SustainMLError(f"cannot read {spec.name} as {self.identity!r}: {e}") from e
        self._waitset.attach(subscription._alive)
        self._waitset.attach(subscription._not_alive)
        with self._lock:
            self._subscriptions.append(subscription)
        self._wake.set(True)   # samples may already be waiting
        return subscription

    def close(self) -> None:
        """Delete the participant and everything in it (readers, writers, topics). Idempotent."""
        if not self._closed.is_set():
            self._closed.set()
            self._wake.set(True)
            if threading.current_thread() is not self._dispatcher:
                self._dispatcher.join(timeout=10)
            # Delete the participant in C now (its readers, writers, conditions and waitset with
            # it) rather than whenever Python collects it, possibly during interpreter shutdown.
            # cyclonedds-python has no public delete; Entity.__del__ is its deletion.
            self.dp.__del__()


class ServiceServer(Generic[ReqT, RepT]):
    """Answers requests of one service. ``handler(request) -> reply``; an exception becomes a reply
    whose ``error`` field carries one readable line. Replies are remembered for a while so that a
    client that re-sends (it does, until the first reply comes) gets the same answer, not a second
    execution: this makes ``submit`` safe to retry."""

    def __init__(self, participant: Participant, spec: ServiceSpec[ReqT, RepT],
                 handler: Callable[..., RepT], *, workers: int = 2, remember: int = 4096,
                 with_sender: bool = False) -> None:
        """``with_sender``: call ``handler(request, sender)``, sender being the GUID of the
        participant that sent the request (as the bus knows it)."""
        self.spec = spec
        self._handler = handler
        self._with_sender = with_sender
        self._replies: OrderedDict[str, RepT | None] = OrderedDict()
        self._remember = remember
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"srv-{spec.name}")
        self._writer = participant.publisher(spec.reply_topic)
        self._sub = participant.subscribe(spec.request_topic, self._on_request, with_sender=True)

    def _on_request(self, request: ReqT, sender: str) -> None:
        rid = request.request_id
        problem = check_message(request)
        if problem is not None:   # answered at once, the handler never sees it
            log.warning("refused a %s request from participant %s: %s", self.spec.name, sender or "(unknown)", problem)
            reply = self._error_reply(f"request refused: {problem}")
            reply.request_id = rid[:256] if isinstance(rid, str) else ""
            self._writer.publish(reply)
            return
        with self._lock:
            if rid in self._replies:
                done = self._replies[rid]
                if done is not None:
                    self._writer.publish(done)
                return  # in progress: the reply goes out when it is ready
            self._replies[rid] = None
            while len(self._replies) > self._remember:
                self._replies.popitem(last=False)
        self._pool.submit(self._answer, request, sender)

    def _answer(self, request: ReqT, sender: str) -> None:
        rid = request.request_id
        try:
            reply = self._handler(request, sender) if self._with_sender else self._handler(request)
        except SustainMLError as e:
            reply = self._error_reply(str(e))
        except Exception as e:  # noqa: BLE001 - a bug in a handler still answers the client
            log.exception("service %s failed", self.spec.name)
            reply = self._error_reply(f"internal error: {type(e).__name__}: {e}")
        reply.request_id = rid
        with self._lock:
            self._replies[rid] = reply
        self._writer.publish(reply)

    def _error_reply(self, error: str) -> RepT:
        reply = self.spec.reply_type()  # every field of a message has a default
        reply.error = error
        return reply

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


_counter = itertools.count()


class ServiceClient(Generic[ReqT, RepT]):
    """Calls a service: sends a request with a unique id and waits for the reply that carries it.

    A request is re-sent every ``resend_s`` until the first reply, because a request written
    before the server's reader has discovered ours is not delivered (volatile topics)."""

    def __init__(self, participant: Participant, spec: ServiceSpec[ReqT, RepT], *,
                 accept: Callable[[str], bool] | None = None) -> None:
        """``accept(sender)``: whether a reply from that participant (its GUID) may be believed;
        others are dropped (a reply is only as good as its sender: anyone may write the topic)."""
        self.spec = spec
        self._accept = accept
        self._waiting: dict[str, queue.Queue[RepT]] = {}
        self._lock = threading.Lock()
        self._prefix = f"{participant.host}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._writer = participant.publisher(spec.request_topic)
        self._sub = participant.subscribe(spec.reply_topic, self._on_reply, with_sender=True)

    def _on_reply(self, reply: RepT, sender: str) -> None:
        if self._accept is not None and not self._accept(sender):
            log.warning("dropped a %s reply from participant %s, which is not the service's node",
                        self.spec.name, sender or "(unknown)")
            return
        with self._lock:
            q = self._waiting.get(reply.request_id)
        if q is not None:
            q.put(reply)

    def _wait_for_server(self, deadline: float) -> None:
        while self._writer.matched() == 0 or self._sub.matched() == 0:
            if time.monotonic() > deadline:
                raise RequestTimeout(f"no {self.spec.name} service found on the bus "
                                     f"({self.spec.doc}); is that node running in this DDS domain?")
            time.sleep(0.02)

    def new_request_id(self) -> str:
        return f"{self._prefix}-{next(_counter)}"

    def call(self, request: ReqT, *, timeout_s: float = 10.0, resend_s: float = 1.0) -> RepT:
        """The first reply to ``request``; RequestTimeout if none comes within ``timeout_s``."""
        replies = self.gather(request, timeout_s=timeout_s, resend_s=resend_s, first_only=True)
        return replies[0]

    def gather(self, request: ReqT, *, timeout_s: float = 3.0, resend_s: float = 1.0,
               first_only: bool = False) -> list[RepT]:
        """Every reply that comes within ``timeout_s`` (several servers may answer, e.g. one
        hardware node per host), at least one, else RequestTimeout."""
        deadline = time.monotonic() + timeout_s
        self._wait_for_server(deadline)
        if not request.request_id:
            request.request_id = self.new_request_id()
        rid = request.request_id
        q: queue.Queue[RepT] = queue.Queue()
        with self._lock:
            self._waiting[rid] = q
        replies: list[RepT] = []
        try:
            next_send = 0.0
            while True:
                now = time.monotonic()
                if now >= deadline:
                    break
                if not replies and now >= next_send:
                    self._writer.publish(request)
                    next_send = now + resend_s
                try:
                    replies.append(q.get(timeout=max(0.0, min(deadline, next_send) - now)))
                    if first_only:
                        break
                except queue.Empty:
                    continue
        finally:
            with self._lock:
                self._waiting.pop(rid, None)
        if not replies:
            raise RequestTimeout(f"no reply from the {self.spec.name} service within {timeout_s:g} s")
        return replies
