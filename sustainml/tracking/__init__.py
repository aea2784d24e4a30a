"""Track the energy and gCO2e of the stages of your own ML pipeline, and forecast training live.

    from sustainml.tracking import Tracker

    with Tracker(region="DEU", pue=1.0) as tracker:
        with tracker.stage("featurize", run="RF"):
            ...
    # the per-run, per-stage table is printed when the block ends

See :mod:`sustainml.tracking.tracker` for what a stage's energy is and how failures, short stages
and several devices are handled, and :mod:`sustainml.tracking.forecast` for the training forecast.
The tables and summaries are in :mod:`sustainml.report`, shared with the pipeline's results.
"""

from sustainml.exceptions import TrackingError

from .forecast import EnergyForecast, min_epochs, predict_total
from .store import RunStore
from .tracker import StageHandle, Tracker, Training, visible_devices

__all__ = [
    "Tracker",
    "Training",
    "StageHandle",
    "RunStore",
    "EnergyForecast",
    "TrackingError",
    "predict_total",
    "min_epochs",
    "visible_devices",
]
