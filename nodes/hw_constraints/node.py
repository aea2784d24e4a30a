"""Hardware node: publishes its machine's inventory and measures candidate models on its devices
with real torch kernels (logic in ``inventory.py``, ``measure.py`` and the ``energy_*`` sources).

One runs on every machine that should contribute devices; each is named ``hw_constraints@HOST``."""

import copy
import os
from dataclasses import dataclass

from sustainml import msg, topics
from sustainml.exceptions import MeasurementError
from sustainml.node import Input, TaskContext, TaskNode, run_node

from sustainml_nodes.model_provider import zoo

from .inventory import allowed_devices, read_inventory
from .measure import measure


@dataclass
class HwParams:
    window_s: float = 1.0          # metered window per phase (inference, training), seconds
    train_batch_size: int = 8      # batch of the measured training steps
    host: str = ""                 # name this host reports; "" = SUSTAINML_HOST or the hostname


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
        self.inventory = read_inventory(self.host)
        self._cache: dict[tuple, msg.Measurement] = {}
        self.pub_inventory = self.create_publisher(topics.HARDWARE_INVENTORY)
        self.create_service(topics.INVENTORY, self._inventory)

    def on_activate(self) -> None:
        self.pub_inventory.publish(self.inventory)

    def _inventory(self, request: msg.InventoryRequest) -> msg.InventoryReply:
        return msg.InventoryReply(request_id=request.request_id, inventory=self.inventory)

    def process(self, ctx: TaskContext, task: msg.EncodedTask,
                candidates: msg.ModelCandidates) -> msg.HardwareMeasurement:
        devices, excluded = allowed_devices(self.inventory, list(task.allowed_hardware))
        result = msg.HardwareMeasurement(task_id=task.task_id, host=self.host, excluded=excluded)
        if not devices:
            # Nothing here is allowed: report it (not an error), so the task goes on with other hosts.
            return result
        jobs = [(c, d) for c in candidates.candidates for d in devices]
        batch = int(task.usage.batch_size) or 1
        for i, (candidate, device) in enumerate(jobs):
            ctx.progress(100.0 * i / len(jobs), f"measuring {candidate.name} on {device} ({i + 1}/{len(jobs)})")
            key = (candidate.name, tuple(candidate.input_shape), batch, self.params.train_batch_size, device)
            try:
                if key in self._cache:
                    m = copy.deepcopy(self._cache[key])
                    m.cached = True
                else:
                    workload = zoo.build(candidate.name)
                    m = measure(workload, device, model_name=candidate.name, host=self.host,
                                batch_size=batch, train_batch_size=self.params.train_batch_size,
                                window_s=self.params.window_s,
                                progress=lambda pct, text: ctx.check_cancelled())
                    self._cache[key] = m
            except MeasurementError as e:
                result.excluded.append(f"{candidate.name} on {device}: {e}")
                continue
            result.measurements.append(m)
        if not result.measurements and candidates.candidates:
            raise MeasurementError("no candidate could be measured here: " + "; ".join(result.excluded))
        return result


def main(argv: list[str] | None = None) -> int:
    return run_node(HardwareNode, argv)


if __name__ == "__main__":
    raise SystemExit(main())
