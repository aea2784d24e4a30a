"""Track the energy and gCO2e of the stages of your own ML pipeline, and forecast training live.

    from sustainml.tracking import Tracker

    tracker = Tracker(region="DEU", pue=1.0)
    with tracker.stage("featurize", run="RF"):
        ...
    tracker.print_table()

See :mod:`sustainml.tracking.tracker` for what a stage's energy is and how failures, short stages
and several devices are handled, and :mod:`sustainml.tracking.forecast` for the training forecast.
"""

from .forecast import EnergyForecast, co2_g_of, min_epochs, predict_total
from .store import RunStore
from .tracker import (EpochEnergy, RunSummary, StageHandle, Tracker, TrackingError, Training, describe_dominance,
                      parse_task_id, stages_table, summarise, visible_devices)

__all__ = [
    "Tracker",
    "Training",
    "StageHandle",
    "EpochEnergy",
    "RunSummary",
    "RunStore",
    "EnergyForecast",
    "TrackingError",
    "predict_total",
    "co2_g_of",
    "min_epochs",
    "parse_task_id",
    "visible_devices",
    "summarise",
    "stages_table",
    "describe_dominance",
]
