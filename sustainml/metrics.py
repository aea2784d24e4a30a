"""What a node has done, for Prometheus: tasks processed and failed, how long each took, whether the node
is up, the energy the hardware node spent measuring, and the inputs it refused, on an opt-in HTTP port
(Prometheus text and OpenMetrics, by content negotiation; ``prometheus_client``).

Off unless asked for: ``SUSTAINML_METRICS_PORT`` (or ``start_exporter(..., port=)``) names the port of
one node; in a launch file each node gets its own in its ``env:``. The endpoint listens on 127.0.0.1
unless ``SUSTAINML_METRICS_ADDR`` says otherwise (``0.0.0.0`` for a Prometheus on another host).

The node runtime calls ``start_exporter`` once the node is ready and ``NodeMetrics.stopped`` when it
shuts down; in between it records each task (``task_finished``), each refused input
(``input_rejected``) and each output (``output``: a hardware node's final measurement message carries
the energy it spent). Code that is not the node (an input check deep in the runtime) records through
``current()``, which is a ``NodeMetrics`` that serves nothing until an exporter starts.

Every series carries the labels ``node`` (the instance's name) and ``kind``; the process's own
figures (``process_resident_memory_bytes``, CPU seconds, open files) come with them.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector, start_http_server

from . import msg
from .exceptions import ConfigError

__all__ = ["NodeMetrics", "start_exporter", "current", "METRICS_PORT_ENV", "METRICS_ADDR_ENV",
           "MAX_REASONS", "LATENCY_BUCKETS_S"]

METRICS_PORT_ENV = "SUSTAINML_METRICS_PORT"   # the node's metrics port; unset, "" or 0 = no endpoint
METRICS_ADDR_ENV = "SUSTAINML_METRICS_ADDR"   # the address it listens on; default 127.0.0.1
#: Distinct ``reason`` label values kept per metric; more are counted as "other", so that hostile inputs
#: with ever new reasons cannot grow the series without bound.
MAX_REASONS = 32
_MAX_REASON_CHARS = 64
#: Stage latency buckets, Units: s: a cached encode takes milliseconds, a measured task minutes.
LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
                     600.0)

_log = logging.getLogger(__name__)


class NodeMetrics:
    """The metrics of one node, in a registry of their own (several nodes in one process, as in tests,
    never collide). Thread-safe: prometheus_client's metrics are."""

    def __init__(self, node: str, kind: str = "") -> None:
        self.node, self.kind = node, kind or node
        self.registry = CollectorRegistry()
        self.port = 0   # the port served, 0 = none
        self._server: Any = None
        self._reasons: dict[str, set[str]] = {}
        self._synced: dict[str, int] = {}
        self._reasons_lock = threading.Lock()
        labels = ["node", "kind"]
        r = self.registry
        ProcessCollector(registry=r)
        self._up = Gauge("sustainml_node_up", "1 while the node serves, 0 once it stops", labels, registry=r)
        self._processed = Counter("sustainml_tasks_processed", "Tasks this node processed to an output",
                                  labels, registry=r)
        self._failed = Counter("sustainml_tasks_failed", "Tasks this node did not process to an output, "
                               "by reason (rejected: the input's fault; error: the node's; cancelled)",
                               labels + ["reason"], registry=r)
        self._latency = Histogram("sustainml_stage_latency_seconds", "Time this node spent on a task "
                                  "(its stage), from its inputs complete to its output, Units: s",
                                  labels, buckets=LATENCY_BUCKETS_S, registry=r)
        self._rejected = Counter("sustainml_rejected_inputs", "Input messages this node refused, by reason",
                                 labels + ["reason"], registry=r)
        self._energy = Counter("sustainml_measurement_energy_joules", "Energy spent measuring (hardware "
                               "node), idle share included, Units: J", labels, registry=r)
        self._device_s = Counter("sustainml_measurement_device_seconds", "Device time spent measuring "
                                 "(hardware node), Units: s", labels, registry=r)
        self._jobs = Counter("sustainml_measurements", "Jobs in final measurement messages, by basis "
                             "(measured, reused, estimated)", labels + ["basis"], registry=r)
        self._own = (self.node, self.kind)
        # Series that exist from the start read 0, not "absent", on the first scrape.
        self._up.labels(*self._own).set(0)
        self._processed.labels(*self._own)
        self._latency.labels(*self._own)

    # ---------------------------------------------------------------- serving
    def serve(self, port: int, addr: str = "127.0.0.1") -> bool:
        """Serve the metrics on ``addr:port`` (0 = a free port, then read ``self.port``); whether it could.
        A port that is taken is logged, not raised: a node does not stop for want of its metrics."""
        try:
            server, _thread = start_http_server(port, addr=addr, registry=self.registry)
        except OSError as e:
            _log.error("%s: metrics not served: cannot listen on %s:%d (%s); set %s to a free port",
                       self.node, addr, port, e, METRICS_PORT_ENV)
            return False
        self._server = server
        self.port = int(server.server_address[1])
        _log.info("%s: metrics on http://%s:%d/metrics", self.node, addr, self.port)
        return True

    def started(self) -> None:
        """The node serves."""
        self._up.labels(*self._own).set(1)

    def stopped(self) -> None:
        """The node stopped serving: up reads 0, and the endpoint closes."""
        self._up.labels(*self._own).set(0)
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()

    # ---------------------------------------------------------------- events
    def task_finished(self, outcome: str, seconds: float) -> None:
        """A task's stage ended here after ``seconds`` (Units: s): ``outcome`` "done" (an output), else why
        not ("rejected", "error", "cancelled")."""
        self._latency.labels(*self._own).observe(max(0.0, seconds))
        if outcome == "done":
            self._processed.labels(*self._own).inc()
        else:
            self._failed.labels(*self._own, self._reason("failed", outcome)).inc()

    def input_rejected(self, reason: str, count: int = 1) -> None:
        """``count`` input messages were refused; ``reason`` is a short category ("no task id", "limits",
        "untrusted: ..."), not the message's text: each distinct reason is a series."""
        self._rejected.labels(*self._own, self._reason("rejected", reason)).inc(count)

    def sync_refusals(self, counts: Mapping[str, int]) -> None:
        """Count as rejected inputs what ``counts`` (refusals by reason, only ever growing: ``Peers.refused``)
        added since the last call, each under the reason "untrusted: REASON"."""
        with self._reasons_lock:
            seen = dict(self._synced)
            self._synced = dict(counts)
        for reason, count in counts.items():
            if count > seen.get(reason, 0):
                self.input_rejected(f"untrusted: {reason}", count - seen.get(reason, 0))

    def output(self, message: object) -> None:
        """An output was published: a hardware node's final message for a task (``plan_done``) adds the
        energy and device time it spent measuring and its jobs by basis."""
        if isinstance(message, msg.HardwareMeasurement) and message.plan_done:
            self._energy.labels(*self._own).inc(max(0.0, float(message.measuring_energy_j)))
            self._device_s.labels(*self._own).inc(max(0.0, float(message.measuring_s)))
            for job in message.measurements:
                basis = job.basis or ("reused" if job.cached else "measured")
                self._jobs.labels(*self._own, self._reason("basis", basis)).inc()

    def _reason(self, metric: str, reason: str) -> str:
        reason = " ".join(str(reason).split())[:_MAX_REASON_CHARS] or "unknown"
        with self._reasons_lock:
            seen = self._reasons.setdefault(metric, set())
            if reason not in seen:
                if len(seen) >= MAX_REASONS:
                    return "other"
                seen.add(reason)
        return reason


_current = NodeMetrics("none")
_current_lock = threading.Lock()


def current() -> NodeMetrics:
    """This process's node metrics: those of the last ``start_exporter``, else a set that serves nothing."""
    return _current


def start_exporter(node: str, kind: str = "", port: int | None = None, *, addr: str | None = None) -> NodeMetrics:
    """The metrics of node ``node`` (of ``kind``), served on ``port`` (None = ``SUSTAINML_METRICS_PORT``;
    unset, "" or 0 = not served, but still recorded) at ``addr`` (None = ``SUSTAINML_METRICS_ADDR``, else
    127.0.0.1); they become ``current()``. Call ``started()`` on it once the node serves.

    Raises:
        ConfigError: ``SUSTAINML_METRICS_PORT`` is not a port number.
    """
    global _current
    if port is None:
        text = os.environ.get(METRICS_PORT_ENV, "").strip()
        if text and not (text.isdigit() and 0 <= int(text) <= 65535):
            raise ConfigError(f"{METRICS_PORT_ENV}={text!r}: a port number (1-65535) expected, or 0 or nothing "
                             "for no metrics endpoint")
        port = int(text or 0)
    metrics = NodeMetrics(node, kind)
    if port:
        metrics.serve(port, addr or os.environ.get(METRICS_ADDR_ENV, "").strip() or "127.0.0.1")
    with _current_lock:
        _current = metrics
    return metrics
