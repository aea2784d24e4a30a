"""Hardware node: publishes its machine's inventory and answers each task's candidates on its devices:
first from estimates and stored measurements, then with real torch kernels within the task's
measurement budget, one message per measurement as it lands (logic in ``answer.py``, ``plan.py``,
``prerun.py``, ``measure.py`` and the ``energy_*`` sources). It builds each candidate from its
``builder`` (``candidate_model.py``), so it measures models no catalogue of its own holds; its
catalogue serves only to profile ahead of time and for candidates without a builder. Measurements,
device calibrations and what the estimator learned are kept in ``cache.py``'s SQLite file in the store
directory, so an iteration, another user's task or a restarted node asking for the same configuration
never re-measures.

One runs on every machine that should contribute devices; each is named ``hw_constraints@HOST``."""

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sustainml import msg, topics
from sustainml.exceptions import ConfigError, MeasurementError
from sustainml.models.catalogue import default_catalogue
from sustainml.node import Input, TaskContext, TaskNode, run_node

from .answer import Budget, MeasuringSettings, TaskMeasuring
from .cache import CACHE_FILE, MeasurementCache
from .inventory import allowed_devices, read_inventory
from .measure import parse_precision
from .prerun import PreRunEstimator


@dataclass
class HwParams:
    window_s: float = 1.0          # metered window per phase (inference, training), seconds
    train_batch_size: int = 8      # batch of the measured training steps
    precision: str = "fp32"        # dtype of the measured weights and inputs: fp32, bf16, fp16
    host: str = ""                 # name this host reports; "" = SUSTAINML_HOST or the hostname
    cache: str = ""                # measurement cache (SQLite); "" = STORE_DIR/measurements.sqlite3
    budget_s: float = 30.0         # device time a task may spend measuring here, when its problem sets none


class HardwareNode(TaskNode):
    name = "hw_constraints"
    unique_per_host = True
    Params = HwParams
    inputs = {"task": Input(topics.ENCODED_TASK), "candidates": Input(topics.MODEL_CANDIDATES)}
    output = topics.HARDWARE_MEASUREMENT

    def __init__(self, **kwargs: Any) -> None:
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
        if not self.params.budget_s > 0:
            raise ConfigError(f"node {self.name}: parameter budget_s is {self.params.budget_s:g}; give the seconds of "
                              "device time a task may spend measuring here (e.g. 30)")
        self.cache = MeasurementCache(self.params.cache or Path(self.config.store_dir) / CACHE_FILE, holder=self.name)
        self.settings = MeasuringSettings(window_s=self.params.window_s, train_batch_size=self.params.train_batch_size,
                                          precision=self.params.precision)
        self.estimator = PreRunEstimator(self.cache, host=self.host, precision=self.params.precision,
                                         window_s=self.params.window_s)
        self.pub_inventory = self.create_publisher(topics.HARDWARE_INVENTORY)
        self.create_service(topics.INVENTORY, self._inventory)

    def on_activate(self) -> None:
        self.pub_inventory.publish(self.inventory)
        # Calibrate each device now (or read its calibration from the store), so that the first task's
        # first answer does not wait for it; its cost is charged to the first task that uses it.
        for device in self.inventory.devices:
            try:
                self.estimator.calibration(device.id)
            except MeasurementError as e:
                self.log.warning("%s cannot be calibrated, so its jobs cannot be estimated: %s", device.id, e)
        # A node-owned thread: shutdown joins it before on_shutdown closes the store it writes.
        self.create_thread(self.estimator.profile_catalogue, default_catalogue(), self._stop,
                           name=f"{self.name}-profiles")

    def on_shutdown(self) -> None:
        self.cache.close()

    def _inventory(self, request: msg.InventoryRequest) -> msg.InventoryReply:
        return msg.InventoryReply(request_id=request.request_id, inventory=self.inventory)

    def process(self, ctx: TaskContext, task: msg.EncodedTask,
                candidates: msg.ModelCandidates) -> msg.HardwareMeasurement:
        devices, excluded = allowed_devices(self.inventory, list(task.allowed_hardware))
        budget = Budget(seconds=float(task.measurement_budget_s) or self.params.budget_s,
                        joules=float(task.measurement_budget_j))
        if not devices:
            # Nothing here is allowed: report it (not an error), so the task goes on with other hosts.
            return msg.HardwareMeasurement(task_id=task.task_id, host=self.host, excluded=excluded, plan_done=True,
                                           budget_s=budget.seconds)
        measuring = TaskMeasuring(
            task=task, candidates=candidates, devices=devices, excluded=excluded, inventory=self.inventory,
            cache=self.cache, estimator=self.estimator, settings=self.settings, budget=budget,
            publish=self.publish_output, progress=ctx.progress, check=ctx.check_cancelled)
        return measuring.run()


def main(argv: list[str] | None = None) -> int:
    return run_node(HardwareNode, argv)


if __name__ == "__main__":
    raise SystemExit(main())
