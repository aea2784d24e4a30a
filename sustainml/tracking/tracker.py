"""Meter the stages of your own ML pipeline, and forecast a training run while it runs.

    from sustainml.tracking import Tracker

    with Tracker(region="DEU", pue=1.2) as tracker:          # devices="auto": cpu + every visible GPU
        with tracker.stage("featurize", run="RF"):
            features = featurize(frame)
        with tracker.training(run="MLP", planned_epochs=50, budget_co2_g=5.0) as training:
            for epoch in range(50):
                with training.epoch():
                    train_one_epoch()
                if training.exceeds_budget:
                    break                                   # the forecast says the budget will not hold
        tracker.print_table()                               # one row per run, one column per stage

Why a tracker beside the pipeline: the pipeline estimates what a model *would* cost before anyone
trains it; this measures what the user's own pipeline *does* cost, stage by stage, with the same
energy sources as the hardware node (NVML, RAPL, else the declared CPU estimate) and the same
honesty: every record carries its method, one standard uncertainty and what was assumed.

What a stage's energy is: everything the metered devices drew while the stage ran, idle included
(the counters cannot tell this process from others, except the CPU estimate, which counts this
process's CPU share plus an idle floor). The intensity and PUE are reference values without an
uncertainty; the energy's uncertainty is carried into the gCO2e.

Choices worth knowing:

- A stage shorter than a counter's update period is still recorded, with the large uncertainty
  that such a window deserves (see ``EnergyMeter.end_window(allow_short=True)``).
- An exception inside a stage propagates to you unchanged; the stage is still recorded (its
  energy was spent), with the exception in its ``error`` field.
- Stages do not nest (each joule would count twice); a training is itself a stage, ``train``.
- With CUDA devices, and torch's CUDA initialised, every stage and epoch edge synchronises the
  devices, so queued kernels are charged to the stage that launched them.
- Records go to a local SQLite :class:`~sustainml.tracking.store.RunStore`, with or without the
  pipeline; with ``publish=True`` they also go on ``sustainml/stage_record`` and forecasts on
  ``sustainml/training_forecast``, for a task the orchestrator knows.
- One tracker is meant for one thread.
"""

from __future__ import annotations

import itertools
import logging
import math
import socket
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sustainml import msg, topics, units
from sustainml.carbon.intensity import RegionIntensity, resolve_region
from sustainml.energy import make_energy_source, parse_device
from sustainml.energy_source import EnergyMeter, EnergySource, EnergyWindow
from sustainml.exceptions import InvalidProblem, MeasurementError, RequestTimeout, TrackingError
from sustainml.problem import parse_task_id, task_text
from sustainml.report import RunSummary, stages_table, summarise_stages

from .forecast import DEFAULT_LEVEL, DEFAULT_WARMUP_EPOCHS, check_plan, min_epochs, predict_total, t_quantile
from .store import RunStore

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

    from sustainml.bus import Participant, Publisher
    from sustainml.config import RuntimeConfig

__all__ = ["Tracker", "Training", "StageHandle", "visible_devices"]

log = logging.getLogger("sustainml.tracking")

# How long a publishing tracker waits for a subscriber of stage records to match, once, at start:
# stage_record is a volatile topic, so a record written before the match is lost to that reader.
MATCH_WAIT_S = 2.0


@dataclass
class StageHandle:
    """What ``with tracker.stage(...) as handle`` gives: ``handle.record`` once the stage has ended."""

    name: str
    run: str
    record: msg.StageRecord | None = None


def visible_devices() -> list[str]:
    """``cpu`` and every CUDA device torch can see. Without torch already imported, torch is only
    imported when an NVIDIA driver is present (``/dev/nvidiactl``, or ``/dev/dxg`` under WSL):
    without one no CUDA device can be visible, and importing torch costs seconds."""
    devices = ["cpu"]
    if "torch" not in sys.modules and not any(Path(p).exists() for p in ("/dev/nvidiactl", "/dev/dxg")):
        return devices
    try:
        import torch  # already imported, or a driver is present
    except ImportError:
        return devices
    if torch.cuda.is_available():
        devices += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    return devices


def _sources_for(devices: str | Sequence[str]) -> list[EnergySource]:
    """One energy source per device. With ``"auto"`` a GPU whose energy cannot be metered is left
    out with a warning (the stages are then metered without it); a device named explicitly must work."""
    auto = isinstance(devices, str) and devices.strip().lower() == "auto"
    sources = []
    for device in _devices_of(devices):
        try:
            sources.append(make_energy_source(device))
        except MeasurementError as e:
            if not auto or device == "cpu":
                raise
            log.warning("%s is left out of the tracking: %s", device, e)
    return sources


def _devices_of(devices: str | Sequence[str]) -> list[str]:
    if isinstance(devices, str):
        if devices.strip().lower() == "auto":
            return visible_devices()
        devices = devices.split("+")
    wanted = []
    for device in devices:
        kind, index = parse_device(device)  # ValueError names the accepted forms
        wanted.append("cpu" if kind == "cpu" else f"cuda:{index}")
    if not wanted or len(set(wanted)) != len(wanted):
        raise ValueError(f"devices {list(devices)!r}: expected distinct devices such as ['cpu', 'cuda:0'], or 'auto'")
    return wanted


class Tracker:
    """Meters stages of the user's pipeline and turns them into ``msg.StageRecord`` values.

    ``region`` (any form ``resolve_region`` accepts) and ``pue`` (the facility's power usage
    effectiveness, 1.0 for a laptop) turn energy into gCO2e. ``devices`` is ``"auto"``, a device
    (``"cuda:0"``) or a list; ``sources`` replaces them with given energy sources (tests pass fakes).
    ``store`` is a RunStore, a path, ``":memory:"`` (keep nothing), or None for
    ``RunStore.default_path()``. ``task_id`` ties the records to a pipeline task; with
    ``publish=True`` the orchestrator must know that task, ``region`` may then be left empty to take
    the task's training region, and records and forecasts go on the bus. ``clock`` (monotonic, s)
    and ``wall_clock`` (Unix time, s) are injectable so that a recorded run can be replayed.
    """

    def __init__(
        self,
        region: str = "",
        *,
        pue: float = 1.0,
        devices: str | Sequence[str] = "auto",
        sources: Sequence[EnergySource] | None = None,
        store: RunStore | str | Path | None = None,
        task_id: msg.TaskId | str | None = None,
        publish: bool = False,
        config: RuntimeConfig | None = None,
        timeout_s: float = 10.0,
        clock: Callable[[], float] = time.perf_counter,
        wall_clock: Callable[[], float] = time.time,
        print_at_exit: bool = True,
    ) -> None:
        if not (math.isfinite(pue) and pue >= 1.0):
            raise ValueError(f"pue {pue!r}: a power usage effectiveness is 1.0 or more (1.0 = no facility overhead)")
        if publish and task_id is None:
            raise ValueError("publish=True needs task_id: the pipeline files stage records under a task "
                             "(give 'PROBLEM_ID' or 'PROBLEM_ID/ITERATION' from `sustainml submit`)")
        self.pue = float(pue)
        self.host = socket.gethostname()
        self.task_id = parse_task_id(task_id) if task_id is not None else msg.TaskId()
        self._clock = clock
        self._wall_clock = wall_clock
        self._records: list[msg.StageRecord] = []
        self._forecasts: dict[str, msg.TrainingForecast] = {}
        # Used as a context manager, the tracker prints its table when the block ends, unless the
        # script printed it itself (or asked not to).
        self._print_at_exit = print_at_exit
        self._active_stage: str | None = None
        self._window_ids = itertools.count()
        self._bus: Participant | None = None
        self._stage_publisher: Publisher[msg.StageRecord] | None = None
        self._forecast_publisher: Publisher[msg.TrainingForecast] | None = None
        self._owns_store = not isinstance(store, RunStore)
        self._store: RunStore | None = None
        try:
            task_result = self._connect(config, timeout_s) if publish else None
            if not region.strip() and task_result is not None:
                region = _training_region(task_result)
            if not region.strip():
                raise InvalidProblem(
                    "a region is needed to turn energy into gCO2e: pass region='DEU' (an ISO 3166 code, a "
                    "country name, 'gcp:europe-west1', 'aws:eu-central-1'...)"
                    + (f"; task {task_text(self.task_id)} has no result yet to take its training region from"
                       if task_result is not None else ""))
            self.region: RegionIntensity = resolve_region(region)
            self.sources: list[EnergySource] = list(sources) if sources is not None else _sources_for(devices)
            if not self.sources:
                raise ValueError("sources is empty: give at least one EnergySource, or leave it None")
            self._meters = [EnergyMeter(source, clock=clock) for source in self.sources]
            for meter in self._meters:
                meter.read()   # from now on, the mean power bounds what a stage shorter than an update missed
            self._cuda_indices = [parse_device(s.device)[1] for s in self.sources if s.device.startswith("cuda")]
            self._store = store if isinstance(store, RunStore) else RunStore(store or RunStore.default_path())
        except BaseException:
            self.close()
            raise

    # ------------------------------------------------------------------------------ public

    @property
    def devices(self) -> str:
        """The metered devices, "+"-joined, as in ``StageRecord.devices`` (e.g. "cpu+cuda:0")."""
        return "+".join(source.device for source in self.sources)

    @property
    def records(self) -> list[msg.StageRecord]:
        """The stages this tracker recorded, in the order they ended."""
        return list(self._records)

    @property
    def forecasts(self) -> dict[str, msg.TrainingForecast]:
        """The latest training forecast of each run."""
        return dict(self._forecasts)

    @property
    def store(self) -> RunStore:
        assert self._store is not None
        return self._store

    @contextmanager
    def stage(self, name: str, run: str = "") -> Iterator[StageHandle]:
        """Meter the ``with`` block as stage ``name`` of pipeline ``run`` (e.g. the model it builds).

        The record is kept, published when publishing, and set on the yielded handle. An exception
        in the block propagates; the stage is recorded anyway, marked ``failed: ...``.
        """
        with self._stage(name, run, lambda: "") as handle:
            yield handle

    @contextmanager
    def training(
        self,
        run: str,
        planned_epochs: int,
        *,
        budget_co2_g: float = 0.0,
        stage: str = "train",
        level: float = DEFAULT_LEVEL,
        warmup_epochs: int = DEFAULT_WARMUP_EPOCHS,
        on_forecast: Callable[[msg.TrainingForecast], None] | None = None,
    ) -> Iterator[Training]:
        """Meter a training run as stage ``stage`` of ``run``; ``training.epoch()`` meters each epoch,
        and from ``warmup_epochs + 2`` epochs on every epoch updates the forecast of the total for
        ``planned_epochs`` (see :mod:`.forecast`). ``budget_co2_g`` (0 = none) is checked against the
        forecast's low end: when even that exceeds it, ``training.exceeds_budget`` turns true and a
        warning is logged, once. ``on_forecast`` is called with every new forecast."""
        check_plan(planned_epochs, level, warmup_epochs)   # before any work, not at the first forecast
        if not (math.isfinite(budget_co2_g) and budget_co2_g >= 0):
            raise ValueError(f"budget_co2_g must be 0 (no budget) or a positive number of grams, got {budget_co2_g}")
        training = Training(self, run, planned_epochs=planned_epochs, budget_co2_g=budget_co2_g, level=level,
                            warmup_epochs=warmup_epochs, on_forecast=on_forecast)
        t_quantile(0.5, 1)   # loads SciPy now, not inside the metered training
        with self._stage(stage, run, training._describe):
            training._open = True
            try:
                yield training
            finally:
                training._open = False

    def summaries(self) -> list[RunSummary]:
        """Per run: gCO2e per stage, the total and which stage dominates."""
        return summarise_stages(self._records)

    def table(self, *, extra_columns: Mapping[str, Mapping[str, str]] | None = None, title: str = "") -> Table:
        """The records as a rich table: see :func:`stages_table`."""
        return stages_table(self._records, extra_columns=extra_columns, title=title)

    def print_table(self, console: Console | None = None, *,
                    extra_columns: Mapping[str, Mapping[str, str]] | None = None, title: str = "") -> None:
        """Print one row per run, one column per stage (gCO2e), the total and the dominant stage;
        ``extra_columns`` adds columns by name, each a mapping run -> text (e.g. {"R²": {"RF": "0.91"}}).

        Without ``console``, output to a file or pipe is as wide as the table needs (a log keeps
        every figure whole); a terminal folds cells that do not fit instead.
        """
        from rich.console import Console

        self._print_at_exit = False
        table = self.table(extra_columns=extra_columns, title=title)
        if console is None:
            console = Console()
            if not console.is_terminal:
                needed = console.measure(table, options=console.options.update_width(10_000)).maximum
                console = Console(width=max(console.width, needed))
        console.print(table)

    def close(self) -> None:
        """Leave the bus and close the store if this tracker opened it. Idempotent."""
        if self._bus is not None:
            self._bus.close()
            self._bus = None
        if self._store is not None and self._owns_store:
            self._store.close()
            self._store = None

    def __enter__(self) -> Tracker:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        try:
            if self._print_at_exit and self._records and exc_type is None:
                self.print_table()
        finally:
            self.close()

    # ------------------------------------------------------------------------------ metering

    @contextmanager
    def _stage(self, name: str, run: str, describe: Callable[[], str]) -> Iterator[StageHandle]:
        if not name or not name.strip():
            raise ValueError("a stage needs a name, e.g. 'featurize' or 'train'")
        if self._active_stage is not None:
            raise TrackingError(f"stage {name!r} began inside stage {self._active_stage!r}; stages do not nest "
                                f"(each joule would count twice): end {self._active_stage!r} first")
        handle = StageHandle(name=name, run=run)
        self._active_stage = name
        try:
            started_unix_s = self._wall_clock()
            key = self._begin()
            try:
                yield handle
            except BaseException as e:
                try:
                    window: EnergyWindow | None = self._end(key)
                except MeasurementError as measuring:   # never hide the user's exception behind ours
                    log.warning("stage %r of run %r failed and could not be metered either: %s", name, run, measuring)
                    window = None
                if window is not None:
                    error = f"{type(e).__name__}: {e}".rstrip(": ")
                    handle.record = self._record(name, run, started_unix_s, window, describe(), error=error)
                raise
            window = self._end(key)
            handle.record = self._record(name, run, started_unix_s, window, describe())
        finally:
            self._active_stage = None

    def _begin(self) -> str:
        """Open a window on every device (after the queued GPU work is done); return its key."""
        self._synchronize_cuda()
        key = f"w{next(self._window_ids)}"
        for meter in self._meters:
            meter.begin_window(key)
        return key

    def _end(self, key: str) -> EnergyWindow:
        """Close window ``key`` on every device and sum them: energies add, standard uncertainties of
        different devices' counters are independent and add in quadrature."""
        self._synchronize_cuda()
        windows: list[EnergyWindow] = []
        error: MeasurementError | None = None
        for meter in self._meters:
            try:
                windows.append(meter.end_window(key, allow_short=True))
            except MeasurementError as e:   # close every device's window before saying so
                error = error or e
        if error is not None:
            raise error
        notes = [f"{source.device}: {window.assumptions}"
                 for source, window in zip(self.sources, windows) if window.assumptions]
        return EnergyWindow(
            energy_j=math.fsum(w.energy_j for w in windows),
            uncertainty_j=math.sqrt(math.fsum(w.uncertainty_j**2 for w in windows)),
            duration_s=windows[0].duration_s,
            method="+".join(dict.fromkeys(w.method for w in windows)),
            assumptions="; ".join(notes),
        )

    def _synchronize_cuda(self) -> None:
        """Wait for the kernels queued on the metered GPUs; nothing to wait for unless torch has
        initialised CUDA in this process (importing torch here would cost seconds for nothing)."""
        if not self._cuda_indices:
            return
        torch = sys.modules.get("torch")
        if torch is not None and torch.cuda.is_initialized():
            for index in self._cuda_indices:
                torch.cuda.synchronize(index)

    def _co2_g(self, energy_j: float) -> float:
        return units.co2_g(units.j_to_kwh(energy_j), self.region.intensity_g_per_kwh, self.pue)

    def _record(self, name: str, run: str, started_unix_s: float, window: EnergyWindow,
                assumptions: str, *, error: str = "") -> msg.StageRecord:
        record = msg.StageRecord(
            task_id=msg.TaskId(problem_id=self.task_id.problem_id, iteration=self.task_id.iteration),
            run=run,
            stage=name,
            host=self.host,
            devices=self.devices,
            started_unix_s=started_unix_s,
            duration_s=window.duration_s,
            energy_j=window.energy_j,
            energy_uncertainty_j=window.uncertainty_j,
            energy_method=window.method,
            assumptions="; ".join(part for part in (assumptions, window.assumptions) if part),
            region=self.region.code,
            intensity_g_per_kwh=self.region.intensity_g_per_kwh,
            pue=self.pue,
            co2_g=self._co2_g(window.energy_j),
            co2_uncertainty_g=self._co2_g(window.uncertainty_j),
            error=error,
        )
        self._records.append(record)
        self.store.add([record])
        if self._stage_publisher is not None:
            self._stage_publisher.publish(record)
        return record

    def _emit_forecast(self, forecast: msg.TrainingForecast) -> None:
        self._forecasts[forecast.run] = forecast
        self.store.add_forecast(forecast)
        if self._forecast_publisher is not None:
            self._forecast_publisher.publish(forecast)

    # ------------------------------------------------------------------------------ the bus

    def _connect(self, config: RuntimeConfig | None, timeout_s: float) -> msg.TaskResult:
        """Join the bus, check that the orchestrator knows the task (fixing its iteration when only
        the problem was given) and open the writers; the task's result, for its region."""
        from sustainml.bus import Participant, ServiceClient
        from sustainml.config import load_config

        self._bus = Participant(config or load_config())
        text = task_text(self.task_id)
        request = msg.ResultRequest(problem_id=self.task_id.problem_id, iteration=self.task_id.iteration, limit=1)
        try:
            reply = ServiceClient(self._bus, topics.RESULTS).call(request, timeout_s=timeout_s)
        except RequestTimeout as e:
            raise RequestTimeout(f"cannot check task {text} with the orchestrator: {e}") from e
        if reply.error or not reply.results:
            raise InvalidProblem(f"the orchestrator knows no task {text}"
                                 + (f" ({reply.error})" if reply.error else "")
                                 + "; pass the id that `sustainml submit` printed, as 'PROBLEM_ID' or 'PROBLEM_ID/ITERATION'")
        result = reply.results[0]
        self.task_id = msg.TaskId(problem_id=result.task_id.problem_id, iteration=result.task_id.iteration)
        self._stage_publisher = self._bus.publisher(topics.STAGE_RECORD)
        self._forecast_publisher = self._bus.publisher(topics.TRAINING_FORECAST)
        if not self._stage_publisher.wait_matched(min(MATCH_WAIT_S, timeout_s)):
            log.info("nobody subscribes to %s yet: records published before one joins are only kept locally",
                     topics.STAGE_RECORD.name)
        return result


class Training:
    """A training run being metered: ``with training.epoch(): ...`` around each epoch.

    ``epochs`` holds each finished epoch's energy, ``forecast`` the latest prediction (None before
    ``warmup_epochs + 2`` epochs), ``exceeds_budget`` whether even the prediction's low end is over
    the budget. An epoch that raises is not counted (its partial energy stays in the stage's).
    """

    def __init__(self, tracker: Tracker, run: str, *, planned_epochs: int, budget_co2_g: float, level: float,
                 warmup_epochs: int, on_forecast: Callable[[msg.TrainingForecast], None] | None) -> None:
        self.run = run
        self.planned_epochs = planned_epochs
        self.budget_co2_g = budget_co2_g
        self.level = level
        self.warmup_epochs = warmup_epochs
        self.epochs: list[EnergyWindow] = []   # every metered device, summed; PUE not applied
        self.forecast: msg.TrainingForecast | None = None
        self._tracker = tracker
        self._on_forecast = on_forecast
        self._method = ""
        self._open = False
        self._in_epoch = False
        self._warned = False

    @property
    def energy_so_far_j(self) -> float:
        """The energy of the finished epochs. Units: J, PUE not applied."""
        return math.fsum(e.energy_j for e in self.epochs)

    @property
    def exceeds_budget(self) -> bool:
        return self.forecast is not None and self.forecast.exceeds_budget

    @contextmanager
    def epoch(self) -> Iterator[None]:
        """Meter one epoch; then, with enough epochs, update the forecast."""
        if not self._open:
            raise TrackingError(f"training {self.run!r} has ended (or not begun): call epoch() inside "
                                "`with tracker.training(...) as training:`")
        if self._in_epoch:
            raise TrackingError(f"an epoch of training {self.run!r} began inside another; epochs do not nest")
        self._in_epoch = True
        try:
            key = self._tracker._begin()
            try:
                yield
            except BaseException:
                try:
                    self._tracker._end(key)
                except MeasurementError as measuring:
                    log.warning("a failed epoch of %r could not be metered either: %s", self.run, measuring)
                raise
            window = self._tracker._end(key)
        finally:
            self._in_epoch = False
        self._method = window.method
        self.epochs.append(window)
        if len(self.epochs) >= min_epochs(self.warmup_epochs):
            self._update_forecast()

    def _update_forecast(self) -> None:
        tracker = self._tracker
        prediction = predict_total([e.energy_j for e in self.epochs], self.planned_epochs, self.level,
                                   warmup_epochs=self.warmup_epochs)
        co2_g, low_g, high_g = (tracker._co2_g(prediction.predicted_energy_j), tracker._co2_g(prediction.low_j),
                                tracker._co2_g(prediction.high_j))
        exceeds = self.budget_co2_g > 0 and low_g > self.budget_co2_g
        note = prediction.note
        if exceeds:
            note = (f"over budget: even the {self.level:.0%} interval's low end, {low_g:.4g} gCO2e, exceeds the "
                    f"budget of {self.budget_co2_g:g} g; " + note)
        forecast = msg.TrainingForecast(
            task_id=msg.TaskId(problem_id=tracker.task_id.problem_id, iteration=tracker.task_id.iteration),
            run=self.run,
            host=tracker.host,
            epochs_done=prediction.epochs_done,
            epochs_planned=self.planned_epochs,
            energy_so_far_j=prediction.energy_so_far_j,
            predicted_energy_j=prediction.predicted_energy_j,
            predicted_energy_low_j=prediction.low_j,
            predicted_energy_high_j=prediction.high_j,
            interval_level=self.level,
            predicted_co2_g=co2_g,
            predicted_co2_low_g=low_g,
            predicted_co2_high_g=high_g,
            budget_co2_g=self.budget_co2_g,
            exceeds_budget=exceeds,
            energy_method=self._method,
            note=note,
            updated_unix_s=tracker._wall_clock(),
        )
        self.forecast = forecast
        tracker._emit_forecast(forecast)
        if exceeds and not self._warned:
            self._warned = True
            log.warning(
                "training %r: after %d of %d epochs, the predicted total is %.4g gCO2e (%.4g to %.4g at %.0f%%), "
                "over the budget of %g g even at the low end; stop now to spend no more",
                self.run, prediction.epochs_done, self.planned_epochs, co2_g, low_g, high_g, self.level * 100,
                self.budget_co2_g)
        if self._on_forecast is not None:
            self._on_forecast(forecast)

    def _describe(self) -> str:
        """What the training stage's record says about its epochs."""
        text = f"training: {len(self.epochs)} of {self.planned_epochs} planned epochs metered"
        if self.exceeds_budget:
            text += f"; forecast over the budget of {self.budget_co2_g:g} gCO2e"
        return text


def _training_region(result: msg.TaskResult) -> str:
    """The task's training region, from its result's footprints ("" while it has none)."""
    for option in result.options:
        if option.footprint.train_region:
            return option.footprint.train_region
    return ""
