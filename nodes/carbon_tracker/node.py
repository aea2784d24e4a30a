"""Carbon tracker node: measurements in, gCO2e per option out (logic in ``footprint.py``).

It fires once per hardware node's message of a task (several per host: the estimates, each
measurement as it lands, the final figures), keeping the encoded task and the candidates for the
task's lifetime. It follows every host's inventory, so a device's embodied
emissions are those of its model ("NVIDIA H100 80GB HBM3"), not of a generic GPU."""

import threading
from dataclasses import dataclass
from typing import Any

from sustainml import msg, topics
from sustainml.exceptions import ConfigError, InvalidProblem
from sustainml.node import Input, TaskContext, TaskNode, run_node, task_key
from sustainml.plausibility import measurement_problems

from .footprint import CarbonSettings, compute_footprints
from .live_intensity import LiveIntensityLookup, make_live_provider


@dataclass
class CarbonTrackerParams:
    pue: float = 0.0   # one data-centre PUE for every region; 0 = the region's published figure, else the default
    live_intensity: str = ""      # "electricitymaps" = its latest reading (key in $ELECTRICITYMAPS_API_KEY); "" = data only
    live_base_url: str = ""       # "" = the provider's public API


class CarbonTracker(TaskNode):
    name = "carbon_tracker"
    Params = CarbonTrackerParams
    inputs = {
        "task": Input(topics.ENCODED_TASK, keep=True),
        "candidates": Input(topics.MODEL_CANDIDATES, keep=True),
        "measurement": Input(topics.HARDWARE_MEASUREMENT),
    }
    output = topics.CARBON_FOOTPRINT

    def on_configure(self) -> None:
        pue = self.params.pue
        if pue != 0 and not pue >= 1.0:
            raise ConfigError(
                f"pue={pue}: a PUE is at least 1.0 (1.0 = no facility overhead); 0 = each region's published figure"
            )
        provider = make_live_provider(self.params.live_intensity, base_url=self.params.live_base_url or None)
        self.settings = CarbonSettings(
            pue=pue or None, live=LiveIntensityLookup(provider, log=self.log) if provider is not None else None
        )
        self._devices: dict[str, dict[str, msg.DeviceInfo]] = {}
        self._names_lock = threading.Lock()
        self.create_subscription(topics.HARDWARE_INVENTORY,
                                 self._believed(topics.HARDWARE_INVENTORY, self._on_inventory), with_sender=True)

    def _on_inventory(self, inventory: msg.HardwareInventory) -> None:
        with self._names_lock:
            self._devices[inventory.host] = {d.id: d for d in inventory.devices}

    def fire_key(self, task_id: msg.TaskId, inputs: dict[str, Any]) -> Any:
        # One firing per message of each host: a hardware node answers a task in several (message_index).
        return (task_key(task_id), inputs["measurement"].host, int(inputs["measurement"].message_index))

    def process(self, ctx: TaskContext, task: msg.EncodedTask, candidates: msg.ModelCandidates,
                measurement: msg.HardwareMeasurement) -> msg.CarbonFootprint:
        problems = measurement_problems(measurement)
        if problems:   # the orchestrator refuses it too, and reports the host missing
            raise InvalidProblem(f"the measurement of host {measurement.host} makes no physical sense, "
                                 f"no footprint computed: {'; '.join(problems[:3])}")
        with self._names_lock:
            devices = dict(self._devices.get(measurement.host, {}))
        return compute_footprints(task, candidates, measurement, settings=self.settings, devices=devices)


def main(argv: list[str] | None = None) -> int:
    return run_node(CarbonTracker, argv)


if __name__ == "__main__":
    raise SystemExit(main())
