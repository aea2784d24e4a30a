"""How results look to people and scripts: the JSON view of a TaskResult (keys documented in
README, stable for scripts) and the rich tables the CLI prints."""

from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table

from . import msg

__all__ = ["result_to_dict", "status_name", "result_table", "print_result"]


def status_name(state: msg.TaskState) -> str:
    """"done", "failed", "cancelled", "running" or "queued"."""
    return state.name.removeprefix("TASK_").lower()


def _option_to_dict(o: msg.TaskOption) -> dict[str, Any]:
    return {
        "rank": int(o.rank),
        "model": o.model,
        "device": o.device,
        "host": o.host,
        "region": o.region,
        "quality": {"metric": o.quality.metric, "value": o.quality.value,
                    "higher_is_better": o.quality.higher_is_better},
        "latency_ms": o.latency_ms,
        "energy_j_per_inference": o.energy_j_per_inference,
        "energy_j_per_inference_uncertainty": o.energy_j_per_inference_uncertainty,
        "train_energy_kwh": o.train_energy_kwh,
        "energy_method": o.energy_method,
        "intensity_g_per_kwh": o.intensity_g_per_kwh,
        "pue": o.pue,
        "co2_g": {"training": o.co2_g_training, "inference": o.co2_g_inference, "total": o.co2_g_total},
        "sci_g_per_request": o.sci_g_per_request,
        "meets_constraints": o.meets_constraints,
        "pareto": o.pareto,
        "note": o.note,
    }


def result_to_dict(result: msg.TaskResult) -> dict[str, Any]:
    return {
        "task_id": {"problem_id": result.task_id.problem_id, "iteration": int(result.task_id.iteration)},
        "status": status_name(result.state),
        "error": result.error,
        "failed_node": result.failed_node,
        "explanation": result.explanation,
        "task_type": result.task_type,
        "metric": result.metric,
        "submitted_unix_s": result.submitted_unix_s,
        "finished_unix_s": result.finished_unix_s,
        "options": [_option_to_dict(o) for o in result.options],
    }


def _g(value: float) -> str:
    """Grams with the unit scaled to the value, three significant digits."""
    for unit, scale in (("t", 1e6), ("kg", 1e3), ("g", 1.0), ("mg", 1e-3)):
        if abs(value) >= scale:
            return f"{value / scale:.3g} {unit}"
    return f"{value:.3g} g"


def result_table(result: msg.TaskResult, *, wide: bool = True) -> Table:
    """The options as a table; ``wide=False`` leaves out the training/serving split so that it fits
    an 80-column terminal (every figure is in ``--json``)."""
    hosts = {o.host for o in result.options}
    methods = sorted({o.energy_method for o in result.options})
    table = Table(title=f"{result.task_type or 'task'} {result.task_id.problem_id}/{result.task_id.iteration}"
                        f" (quality: {result.metric or '?'})",
                  caption="* on the Pareto front (quality, gCO2e, latency)  ! misses a constraint\n"
                          f"energy per inference, method: {', '.join(methods)}",
                  box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
    columns = ["#", "model", "device" if len(hosts) <= 1 else "device@host", "region",
               "quality", "ms", "energy"]
    columns += ["CO2 train", "CO2 serve", "CO2 total"] if wide else ["CO2 total"]
    for column in columns:
        table.add_column(column, no_wrap=True, justify="left" if column in ("model", "region") else "right")
    for o in result.options:
        flag = ("*" if o.pareto else "") + ("" if o.meets_constraints else "!")
        device = o.device if len(hosts) <= 1 else f"{o.device}@{o.host}"
        row = [f"{o.rank}{flag}", o.model, device, o.region, f"{o.quality.value:.3g}",
               f"{o.latency_ms:.3g}", _j(o.energy_j_per_inference)]
        row += [_g(o.co2_g_training), _g(o.co2_g_inference), _g(o.co2_g_total)] if wide else [_g(o.co2_g_total)]
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
