"""How results look to people and scripts: the JSON view of a TaskResult (keys documented in
README, stable for scripts) and the rich tables the CLI prints."""

import dataclasses
import enum
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from . import msg
from .problem import problem_to_dict

__all__ = ["result_to_dict", "encoded_to_dict", "to_plain", "status_name", "result_table", "print_result",
           "print_encoded", "phase_shares", "with_uncertainty", "forecast_line", "RunSummary", "summarise_stages",
           "describe_dominance", "stages_table"]


def status_name(state: msg.TaskState) -> str:
    """"done", "failed", "cancelled", "running" or "queued"."""
    return state.name.removeprefix("TASK_").lower()


def _option_to_dict(o: msg.TaskOption) -> dict[str, Any]:
    f = o.footprint
    return {
        "rank": int(o.rank),
        "model": o.model,
        "device": o.device,
        "host": o.host,
        "region": o.region,
        "quality": {"metric": o.quality.metric, "value": _known(o.quality.value),
                    "higher_is_better": o.quality.higher_is_better},
        "latency_ms": o.latency_ms,
        "latency_uncertainty_ms": o.latency_uncertainty_ms,
        "basis": o.basis,
        "energy_per_inference_j": o.energy_per_inference_j,
        "energy_per_inference_uncertainty_j": o.energy_per_inference_uncertainty_j,
        "train_energy_kwh": o.train_energy_kwh,
        "energy_method": o.energy_method,
        "intensity_g_per_kwh": o.intensity_g_per_kwh,
        "pue": o.pue,
        "co2_g": {"experimentation": f.experimentation_co2_g, "training": o.training_co2_g,
                  "inference": o.inference_co2_g, "embodied": f.embodied_co2_g, "total": o.total_co2_g,
                  "total_uncertainty": f.total_co2_uncertainty_g},
        "shares": phase_shares(f),
        "sci_g_per_request": o.sci_g_per_request,
        "sci_uncertainty_g_per_request": f.sci_uncertainty_g_per_request,
        "embodied_g_per_request": f.embodied_g_per_request,
        "pue_source": f.pue_source,
        "intensity_source": f.intensity_source,
        "intensity_year": int(f.intensity_year) or None,
        "alternatives": [to_plain(a) for a in o.alternatives],
        "equivalents": [to_plain(e) for e in f.equivalents],
        "meets_constraints": o.meets_constraints,
        "pareto": o.pareto,
        "note": o.note,
    }


def result_to_dict(result: msg.TaskResult) -> dict[str, Any]:
    return {
        "task_id": {"problem_id": result.task_id.problem_id, "iteration": int(result.task_id.iteration)},
        "status": status_name(result.state),
        "revision": int(result.revision),
        "final": result.state in (msg.TaskState.TASK_DONE, msg.TaskState.TASK_FAILED, msg.TaskState.TASK_CANCELLED),
        "measuring": {"device_s": result.measuring_s, "energy_j": result.measuring_energy_j,
                      "co2_g": result.measuring_co2_g, "note": result.measuring_note},
        "error": result.error,
        "failed_node": result.failed_node,
        "explanation": result.explanation,
        "task_type": result.task_type,
        "metric": result.metric,
        "submitted_unix_s": result.submitted_unix_s,
        "finished_unix_s": result.finished_unix_s,
        "options": [_option_to_dict(o) for o in result.options],
        "modality": result.modality,
        "confidence": result.confidence,
        "findings": [to_plain(f) for f in result.findings],
        "readings": [to_plain(r) for r in result.readings],
        "dataset_profile": _profile_to_dict(result.dataset_profile),
        "candidates": [to_plain(c) for c in result.candidates],
        "excluded": list(result.excluded),
        "stages": [to_plain(r) for r in result.stages],
        "stages_summary": result.stages_summary,
        "forecasts": [to_plain(f) for f in result.forecasts],
        "problem": problem_to_dict(result.problem),
    }


PHASES = ("experimentation", "training", "inference", "embodied")


def phase_shares(f: msg.FootprintDetail) -> dict[str, float]:
    """Each phase's share of the lifetime gCO2e, 0..1 (all 0 when the total is 0)."""
    values = dict(zip(PHASES, (f.experimentation_co2_g, f.training_co2_g, f.inference_co2_g, f.embodied_co2_g)))
    total = sum(values.values())
    return {name: (value / total if total > 0 else 0.0) for name, value in values.items()}


def with_uncertainty(value: float, uncertainty: float, unit: str = "g") -> str:
    """``value ± uncertainty`` with no more digits than the uncertainty justifies (two significant
    digits of it), e.g. ``1234.5678 ± 37.2`` -> ``"1230 ± 37 g"``; three significant digits when
    there is no uncertainty. Grams are scaled to mg, kg or t."""
    scale, unit = _scale(value, unit)
    value, uncertainty = value / scale, uncertainty / scale
    if not (uncertainty > 0 and math.isfinite(uncertainty)):
        return f"{value:.3g} {unit}"
    decimals = 1 - math.floor(math.log10(uncertainty))
    if decimals <= 0:
        return f"{round(value, decimals):.0f} ± {round(uncertainty, decimals):.0f} {unit}"
    return f"{value:.{decimals}f} ± {uncertainty:.{decimals}f} {unit}"


def _scale(value: float, unit: str) -> tuple[float, str]:
    if unit != "g":
        return 1.0, unit
    for name, scale in (("t", 1e6), ("kg", 1e3), ("g", 1.0), ("mg", 1e-3), ("µg", 1e-6), ("ng", 1e-9)):
        if abs(value) >= scale:
            return scale, name
    return 1.0, "g"


def _brief(source: str, limit: int = 60) -> str:
    """The head of a source text (publisher, document) for a one-line display; the whole is in --json."""
    return source if len(source) <= limit else source[: limit - 1].rstrip(" ,;:") + "…"


def encoded_to_dict(task: msg.EncodedTask) -> dict[str, Any]:
    """The task encoder's reading of a problem, for ``sustainml encode --json``."""
    return {
        "task_type": task.task_type,
        "modality": task.modality,
        "metric": task.metric,
        "higher_is_better": task.higher_is_better,
        "confidence": task.confidence,
        "constraints": to_plain(task.constraints),
        "usage": to_plain(task.usage),
        "dataset": to_plain(task.dataset),
        "train_region": task.train_region,
        "inference_region": task.inference_region,
        "allowed_hardware": list(task.allowed_hardware),
        "findings": [to_plain(f) for f in task.findings],
        "readings": [to_plain(r) for r in task.readings],
        "dataset_profile": _profile_to_dict(task.dataset_profile),
        "explanation": task.explanation,
        "warnings": list(task.warnings),
    }


def to_plain(message: Any) -> Any:
    """A message as JSON-ready data: nested messages to dicts, enums to their names, sequences to lists,
    NaN (an unknown figure) to None."""
    if dataclasses.is_dataclass(message):
        return {f.name: to_plain(getattr(message, f.name)) for f in dataclasses.fields(message)}
    if isinstance(message, enum.Enum):
        return message.name
    if isinstance(message, (list, tuple)):
        return [to_plain(v) for v in message]
    return _known(message) if isinstance(message, float) else message


def _known(value: float) -> float | None:
    """None for NaN (an unknown figure, e.g. no published quality): JSON has no NaN."""
    return None if math.isnan(value) else value


def _profile_to_dict(profile: msg.DatasetProfile) -> dict[str, Any] | None:
    return to_plain(profile) if profile.path else None


def _g(value: float) -> str:
    """Grams with the unit scaled to the value, three significant digits."""
    scale, unit = _scale(value, "g")
    return f"{value / scale:.3g} {unit}"


def result_table(result: msg.TaskResult, *, wide: bool = True) -> Table:
    """The options as a table; ``wide=False`` leaves out the training/serving split so that it fits
    an 80-column terminal (every figure is in ``--json``)."""
    hosts = {o.host for o in result.options}
    methods = sorted({o.energy_method for o in result.options})
    table = Table(title=f"{result.task_type or 'task'} {result.task_id.problem_id}/{result.task_id.iteration}"
                        f" (quality: {result.metric or '?'})",
                  caption="* on the Pareto front (quality, gCO2e, latency)  ! misses a constraint  "
                          "~ pre-run estimate, not measured\n"
                          f"energy per inference, method: {', '.join(methods)}",
                  box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
    columns = ["#", "model", "device" if len(hosts) <= 1 else "device@host", "region",
               "quality", "ms", "energy"]
    columns += ["CO2 train", "CO2 serve", "CO2 total"] if wide else ["CO2 total"]
    for column in columns:
        # Short columns never shrink to an ellipsis; a long model name folds onto a second line instead.
        table.add_column(column, no_wrap=column != "model", overflow="fold", min_width=min(len(column), 6),
                         justify="left" if column in ("model", "region") else "right")
    for o in result.options:
        flag = ("*" if o.pareto else "") + ("" if o.meets_constraints else "!")
        device = o.device if len(hosts) <= 1 else f"{o.device}@{o.host}"
        quality = "?" if math.isnan(o.quality.value) else f"{o.quality.value:.3g}"
        guess = "~" if o.basis == "estimated" else ""
        row = [f"{o.rank}{flag}", o.model, device, o.region, quality,
               f"{guess}{o.latency_ms:.3g}", guess + _j(o.energy_per_inference_j)]
        row += [_g(o.training_co2_g), _g(o.inference_co2_g), _g(o.total_co2_g)] if wide else [_g(o.total_co2_g)]
        table.add_row(*row)
    return table


def _j(value: float) -> str:
    for unit, scale in (("kJ", 1e3), ("J", 1.0), ("mJ", 1e-3)):
        if abs(value) >= scale:
            return f"{value / scale:.3g} {unit}"
    return f"{value * 1e6:.3g} µJ"


def print_result(result: msg.TaskResult, console: Console | None = None) -> None:
    console = console or Console()
    if result.state != msg.TaskState.TASK_DONE:
        console.print(f"[bold red]{status_name(result.state)}[/]: {result.error}"
                      + (f" (node {result.failed_node})" if result.failed_node else ""))
        return
    console.print(result_table(result, wide=console.width >= 110))
    if result.explanation:
        console.print(result.explanation)
    console.print(measuring_line(result))
    if result.options:
        print_lifetime(result.options[0], console)
    if result.stages:
        console.print(stages_table(result.stages, title="your pipeline's tracked stages"))
        console.print(result.stages_summary)
    for forecast in result.forecasts:
        console.print(forecast_line(forecast))
    _print_understanding(console, result.dataset_profile, result.findings)
    if result.candidates:
        console.print(candidates_table(result.candidates, result.excluded))


def measuring_line(result: msg.TaskResult) -> str:
    """What producing this answer cost (measuring, calibrating) and what was measured, in one line."""
    measured = sum(1 for o in result.options if o.basis != "estimated")
    return (f"This answer (revision {result.revision}): {measured} of {len(result.options)} options from measurements; "
            f"producing it took {result.measuring_s:.3g} s of device time, {_j(result.measuring_energy_j)}, "
            f"{_g(result.measuring_co2_g)} CO2e" + (f" ({escape(result.measuring_note)})" if result.measuring_note else ""))


def revision_line(result: msg.TaskResult, previous: msg.TaskResult | None) -> str:
    """One line on what a revision changed: the options newly measured, each against its estimate,
    and the recommendation."""
    before = {(o.model, o.device, o.host): o for o in (previous.options if previous else [])}
    landed: dict[tuple[str, str, str], str] = {}
    for o in result.options:
        old = before.get((o.model, o.device, o.host))
        if o.basis != "estimated" and old is not None and old.basis == "estimated" and old.latency_ms > 0:
            change = (o.latency_ms - old.latency_ms) / old.latency_ms
            landed[(o.model, o.device, o.host)] = (f"{o.model} on {o.device} measured {o.latency_ms:.3g} ms "
                                                   f"(estimate {old.latency_ms:.3g} ms, {change:+.0%})")
    best = result.options[0] if result.options else None
    measured = sum(1 for o in result.options if o.basis != "estimated")
    head = f"revision {result.revision}: {measured}/{len(result.options)} options measured"
    parts = [head, *landed.values()]
    if best is not None:
        parts.append(f"#1 {best.model} on {best.device} in {best.region}, {_g(best.total_co2_g)} CO2e")
    return escape("; ".join(parts))


def print_lifetime(o: msg.TaskOption, console: Console) -> None:
    """The recommended option's life in CO2: phases and shares, SCI, where the figures come from,
    the greenest allowed regions and the other devices, and the total in everyday terms."""
    f = o.footprint
    shares = phase_shares(f)
    where = f"{o.model} on {o.device}" + (f" at {o.host}" if o.host else "") + f", served in {o.region}"
    console.print(f"[bold]lifetime of #{o.rank} {escape(where)}[/]: "
                  f"{with_uncertainty(o.total_co2_g, f.total_co2_uncertainty_g)} CO2e")
    amounts = (f.experimentation_co2_g, o.training_co2_g, o.inference_co2_g, f.embodied_co2_g)
    parts = [f"{name} {_g(amount)} ({100 * shares[name]:.0f}%)" for name, amount in zip(PHASES, amounts)
             if amount > 0 or name in ("training", "inference")]
    runs = f"; {f.experiment_runs} experiment runs before the final one" if f.experiment_runs else ""
    steps = f"; {f.train_steps:,} training steps" if f.train_steps else ""
    console.print("  " + ", ".join(parts) + runs + steps)
    console.print(f"  SCI {with_uncertainty(o.sci_g_per_request, f.sci_uncertainty_g_per_request)} CO2e per request "
                  f"(embodied M {_g(f.embodied_g_per_request)}: {f.device_embodied_kg:g} kg over "
                  f"{f.device_lifetime_years:g} years, {escape(_brief(f.embodied_source))})")
    year = f", {f.intensity_year}" if f.intensity_year else ""
    console.print(f"  grid {o.intensity_g_per_kwh:.0f} g/kWh ({escape(_brief(f.intensity_source))}{year}); "
                  f"{escape(_brief(f.pue_source, 90))}; sources in full: --json")
    for a in o.alternatives:
        if a.kind == "region":
            console.print(f"  [green]greener region[/] {escape(a.region)} ({a.intensity_g_per_kwh:.0f} g/kWh): "
                          f"{_g(a.total_co2_g)}, saves {_g(a.saving_g)} ({100 * a.saving_g / o.total_co2_g:.0f}%)")
        else:
            latency = (f", {a.latency_change_ms:+.3g} ms per request" if math.isfinite(a.latency_change_ms)
                       else ", latency unknown")
            console.print(f"  [green]greener device[/] {escape(a.device)}" + (f"@{escape(a.host)}" if a.host else "")
                          + f": {_g(a.total_co2_g)}, saves {_g(a.saving_g)}{latency}")
    if f.equivalents:
        console.print("  that is " + "; ".join(f"{e.amount:.2g} {escape(e.unit)}" for e in f.equivalents)
                      + " (" + "; ".join(escape(_brief(e.source, 30)) for e in f.equivalents) + ")")


@dataclass(frozen=True)
class RunSummary:
    """One tracked run's stages in gCO2e (PUE and intensity applied), in the order they first appear.

    ``co2_uncertainty_g`` adds the stages' uncertainties linearly: stages metered by the same
    source share its calibration error, the larger part of each, so they are not independent.
    """

    run: str
    co2_g_by_stage: dict[str, float]
    total_co2_g: float
    co2_uncertainty_g: float
    energy_j_total: float
    dominant_stage: str
    dominant_share: float
    methods: tuple[str, ...]
    failed_stages: tuple[str, ...] = field(default=())


def summarise_stages(records: Sequence[msg.StageRecord]) -> list[RunSummary]:
    """Per run, in the order runs first appear: a stage met twice in one run is summed."""
    by_run: dict[str, list[msg.StageRecord]] = {}
    for record in records:
        by_run.setdefault(record.run, []).append(record)
    summaries = []
    for run, run_records in by_run.items():
        by_stage: dict[str, float] = {}
        for record in run_records:
            by_stage[record.stage] = by_stage.get(record.stage, 0.0) + record.co2_g
        total_g = math.fsum(by_stage.values())
        dominant = max(by_stage, key=lambda s: by_stage[s])
        summaries.append(RunSummary(
            run=run,
            co2_g_by_stage=by_stage,
            total_co2_g=total_g,
            co2_uncertainty_g=math.fsum(r.co2_uncertainty_g for r in run_records),
            energy_j_total=math.fsum(r.energy_j for r in run_records),
            dominant_stage=dominant,
            dominant_share=by_stage[dominant] / total_g if total_g > 0 else 0.0,
            methods=tuple(dict.fromkeys(r.energy_method for r in run_records)),
            failed_stages=tuple(dict.fromkeys(r.stage for r in run_records if r.error)),
        ))
    return summaries


def describe_dominance(records: Sequence[msg.StageRecord]) -> str:
    """Which stage dominates each run, in words (the text of ``TaskResult.stages_summary``)."""
    return "; ".join(
        f"{s.run or 'run'}: {s.dominant_stage} dominates ({s.dominant_share:.0%} of {_g(s.total_co2_g)} CO2e)"
        for s in summarise_stages(records))


def stages_table(records: Sequence[msg.StageRecord], *, extra_columns: Mapping[str, Mapping[str, str]] | None = None,
                 title: str = "") -> Table:
    """One row per tracked run, one column per stage (gCO2e), the total ± one standard uncertainty,
    the dominant stage and its share, then ``extra_columns`` (name -> {run: text})."""
    summaries = summarise_stages(records)
    stages = list(dict.fromkeys(r.stage for r in records))
    methods = sorted({m for s in summaries for m in s.methods})
    regions = sorted({f"{r.region} ({r.intensity_g_per_kwh:.4g} g/kWh), PUE {r.pue:g}" for r in records})
    caption = [f"gCO2e per stage; region {', '.join(regions) or '-'}; energy method: {', '.join(methods) or '-'}"]
    if any("estimate" in m for m in methods):
        caption.append("estimate: computed from declared assumptions (no energy counter readable), not measured")
    if any(s.failed_stages for s in summaries):
        caption.append("! the stage raised an exception: metered up to where it failed")
    table = Table(title=title or None, caption="\n".join(caption), box=box.SIMPLE_HEAD)
    table.add_column("run", justify="left", overflow="fold")
    for stage in stages:
        table.add_column(stage, justify="right", overflow="fold")
    table.add_column("total", justify="right", overflow="fold")
    table.add_column("dominant", justify="left", overflow="fold")
    extra = dict(extra_columns or {})
    for name in extra:
        table.add_column(name, justify="right", overflow="fold")
    for s in summaries:
        cells = [escape(s.run or "-")]
        for stage in stages:
            value = s.co2_g_by_stage.get(stage)
            cells.append("" if value is None else _g(value) + ("!" if stage in s.failed_stages else ""))
        cells.append(with_uncertainty(s.total_co2_g, s.co2_uncertainty_g))
        cells.append(f"{s.dominant_stage} {s.dominant_share:.0%}")
        cells += [str(column.get(s.run, "")) for column in extra.values()]
        table.add_row(*cells)
    return table


def forecast_line(f: msg.TrainingForecast) -> str:
    """A live training forecast in one line, with its interval and the budget verdict."""
    budget = ""
    if f.budget_co2_g > 0:
        budget = (f"; [bold red]will exceed the {_g(f.budget_co2_g)} budget[/]" if f.exceeds_budget
                  else f"; budget {_g(f.budget_co2_g)}")
    return (f"training {escape(f.run or '-')}: {f.epochs_done}/{f.epochs_planned} epochs, predicted total "
            f"{_g(f.predicted_co2_g)} CO2e ({_g(f.predicted_co2_low_g)} to {_g(f.predicted_co2_high_g)}, "
            f"{100 * f.interval_level:.0f}% interval; energy {f.energy_method}){budget}")


def candidates_table(candidates: list[msg.ModelCandidate], excluded: list[str]) -> Table:
    """Why each model was proposed, and its greener variants with their expected effect on quality."""
    table = Table(title="candidates and greener variants", box=box.SIMPLE_HEAD, pad_edge=False,
                  caption="\n".join(f"not proposed: {escape(why)}" for why in excluded) or None, caption_justify="left")
    table.add_column("model", no_wrap=True)
    table.add_column("why proposed; greener variants: expected effect on quality (evidence in --json)")
    for c in candidates:
        table.add_row(escape(c.display_name or c.name), escape(c.reason))
        for v in c.variants:
            mark = "assumed" if v.assumed else "[bold]published[/]"
            table.add_row("", f"  [green]{escape(v.name)}[/]: {escape(v.quality_effect)} ({mark})")
    return table


def _print_understanding(console: Console, profile: msg.DatasetProfile, findings: list[msg.Finding]) -> None:
    if profile.path:
        console.print(f"[bold]data[/] {escape(profile.path)}: {escape(profile.summary)}")
    for f in findings:
        if f.kind != "assumption":
            console.print(f"[bold]{escape(f.kind)}[/] ({escape(f.field)}): {escape(f.message)}")


def print_encoded(task: msg.EncodedTask, console: Console | None = None) -> None:
    """What ``sustainml encode`` prints: the reading, its confidence, the alternatives and the findings."""
    console = console or Console()
    console.print(f"[bold]{task.task_type}[/] ({task.modality} data, quality as {task.metric}), "
                  f"confidence {task.confidence:.2f}")
    for r in task.readings[1:]:
        console.print(f"  or {r.task_type} (confidence {r.confidence:.2f}): {r.why}")
    c = task.constraints
    limits = [f"{name} {value:g}" for name, value in (
        ("quality_target", c.quality_target), ("max_latency_ms", c.max_latency_ms),
        ("max_train_hours", c.max_train_hours), ("max_train_co2_g", c.max_train_co2_g),
        ("max_memory_mb", c.max_memory_mb)) if value]
    if c.deploy_target:
        limits.append(f"deploy_target {c.deploy_target}")
    console.print("constraints: " + (", ".join(limits) or "none"))
    _print_understanding(console, task.dataset_profile, list(task.findings))
    if task.explanation:
        console.print(task.explanation)
