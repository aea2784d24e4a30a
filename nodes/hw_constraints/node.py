"""Hardware node: publishes its machine's inventory and measures candidate models on its devices
with real torch kernels (logic in ``inventory.py``, ``measure.py`` and the ``energy_*`` sources).
Measurements are kept in ``cache.py``'s SQLite file in the store directory, so an iteration, another
user's task or a restarted node asking for the same model, batch, precision and device never re-measures.

One runs on every machine that should contribute devices; each is named ``hw_constraints@HOST``."""

import os
from dataclasses import dataclass
from pathlib import Path

from sustainml import msg, topics
from sustainml.exceptions import ConfigError, MeasurementError
from sustainml.node import Input, TaskContext, TaskNode, run_node
from sustainml.variants import variant_model_name

from sustainml_nodes.model_provider import zoo

from .cache import CACHE_FILE, MeasurementCache, MeasurementKey
from .inventory import allowed_devices, read_inventory
from .measure import (ESTIMATOR_TRAIN_SAMPLES, INT8_DYNAMIC, measure, measure_estimator, parse_precision,
                      with_training_of)


@dataclass
class HwParams:
    window_s: float = 1.0          # metered window per phase (inference, training), seconds
    train_batch_size: int = 8      # batch of the measured training steps
    precision: str = "fp32"        # dtype of the measured weights and inputs: fp32, bf16, fp16
    host: str = ""                 # name this host reports; "" = SUSTAINML_HOST or the hostname
    cache: str = ""                # measurement cache (SQLite); "" = STORE_DIR/measurements.sqlite3


class HardwareNode(TaskNode):
    name = "hw_constraints"
    unique_per_host = True
    Params = HwParams
    inputs = {"task": Input(topics.ENCODED_TASK), "candidates": Input(topics.MODEL_CANDIDATES)}
    output = topics.HARDWARE_MEASUREMENT

    def __init__(self, **kwargs) -> None:
        host = (kwargs.get("params") or HwParams()).host or os.environ.get("SUSTAINML_HOST", "")
        if host and not kwargs.get("name"):
            kwargs["name"] = f"{self.name}@{host}"
        self._host_override = host
        super().__init__(**kwargs)

    def on_configure(self) -> None:
        if self._host_override:
            self.host = self._host_override
        try:
            parse_precision(self.params.precision)
        except ValueError as e:
            raise ConfigError(f"node {self.name}: parameter precision: {e}") from None
        self.params.precision = self.params.precision.strip().lower()
        self.inventory = read_inventory(self.host)
        self.cache = MeasurementCache(self.params.cache or Path(self.config.store_dir) / CACHE_FILE)
        self.pub_inventory = self.create_publisher(topics.HARDWARE_INVENTORY)
        self.create_service(topics.INVENTORY, self._inventory)

    def on_activate(self) -> None:
        self.pub_inventory.publish(self.inventory)

    def on_shutdown(self) -> None:
        self.cache.close()

    def _inventory(self, request: msg.InventoryRequest) -> msg.InventoryReply:
        return msg.InventoryReply(request_id=request.request_id, inventory=self.inventory)

    def process(self, ctx: TaskContext, task: msg.EncodedTask,
                candidates: msg.ModelCandidates) -> msg.HardwareMeasurement:
        devices, excluded = allowed_devices(self.inventory, list(task.allowed_hardware))
        result = msg.HardwareMeasurement(task_id=task.task_id, host=self.host, excluded=excluded)
        if not devices:
            # Nothing here is allowed: report it (not an error), so the task goes on with other hosts.
            return result
        jobs = [job for c in candidates.candidates for d in devices for job in self._jobs(c, d)]
        batch = int(task.usage.batch_size) or 1
        base: dict[tuple[str, str], msg.Measurement] = {}   # (model, device) -> the model's own measurement
        for i, (candidate, device, variant) in enumerate(jobs):
            name = variant_model_name(candidate.name, variant) if variant else candidate.name
            ctx.progress(100.0 * i / len(jobs), f"measuring {name} on {device} ({i + 1}/{len(jobs)})")
            try:
                m = self.cache.get_or_measure(
                    self._key(candidate, device, batch, variant),
                    lambda: self._measure(ctx, candidate, device, batch, variant))
            except MeasurementError as e:
                result.excluded.append(f"{name} on {device}: {e}")
                continue
            if not variant:
                base[(candidate.name, device)] = m
            elif (candidate.name, device) in base:
                m = with_training_of(m, base[(candidate.name, device)])
            m.model = name
            m.host = self.host  # a cached measurement may come from an earlier name of this host
            result.measurements.append(m)
        if not result.measurements and candidates.candidates:
            raise MeasurementError("no candidate could be measured here: " + "; ".join(result.excluded))
        return result

    def _jobs(self, candidate: msg.ModelCandidate, device: str) -> list[tuple[msg.ModelCandidate, str, str]]:
        """The candidate itself, plus its int8 dynamic quantisation variant on the CPU when it has one
        and this node measures in fp32 (int8 dynamic quantisation starts from fp32 weights)."""
        jobs = [(candidate, device, "")]
        if device == "cpu" and self.params.precision == "fp32" and candidate.library in ("", "torch") and any(
                v.name == INT8_DYNAMIC for v in candidate.variants):
            jobs.append((candidate, device, INT8_DYNAMIC))
        return jobs

    def _measure(self, ctx: TaskContext, candidate: msg.ModelCandidate, device: str, batch: int,
                 variant: str) -> msg.Measurement:
        shape = tuple(candidate.input_shape) or None
        cancel = lambda pct, text: ctx.check_cancelled()  # noqa: E731
        if candidate.library == "sklearn":
            return measure_estimator(zoo.build_estimator(candidate.name, input_shape=shape), device,
                                     model_name=candidate.name, host=self.host, batch_size=batch,
                                     window_s=self.params.window_s, progress=cancel)
        # A variant's training is its model's, measured once in the model's own job (with_training_of).
        train_batch = 0 if variant else self.params.train_batch_size
        return measure(zoo.build(candidate.name, input_shape=shape), device, model_name=candidate.name,
                       host=self.host, batch_size=batch, train_batch_size=train_batch,
                       precision=self.params.precision, window_s=self.params.window_s, progress=cancel,
                       variant=variant)

    def _key(self, candidate: msg.ModelCandidate, device: str, batch: int, variant: str = "") -> MeasurementKey:
        """What a measurement of ``candidate`` on ``device`` depends on, for the cache."""
        info = next(d for d in self.inventory.devices if d.id == device)
        sklearn = candidate.library == "sklearn"
        return MeasurementKey.here(
            model=candidate.name, input_shape=tuple(candidate.input_shape), batch_size=batch,
            train_batch_size=ESTIMATOR_TRAIN_SAMPLES if sklearn else 0 if variant else self.params.train_batch_size,
            precision=variant or ("fp32" if sklearn else self.params.precision), device=device,
            device_name=info.name, energy_method=info.energy_method, window_s=self.params.window_s)


def main(argv: list[str] | None = None) -> int:
    return run_node(HardwareNode, argv)


if __name__ == "__main__":
    raise SystemExit(main())
