"""Turn a user's problem into an encoded ML task: what it asks for, what it states, what is unclear.

``encode`` reads the task type from ``task_type_hint``, else from the text (``task_reading``: sentence
embeddings against the exemplars in ``knowledge.yaml``, cue words as a second signal), looks up its
modality and metric, and fills the fields the structured problem leaves empty from what the text
states ("under 50 ms", "on a Raspberry Pi", "30k images"; ``text_constraints``) and from a dataset
profile. It suggests rather than decides: every value taken from the words is a finding of kind
``inferred``; a text that fits several task types gives the most likely one, the others as
``readings`` and an ``ambiguity`` finding; a structured value that the text or the profile
contradicts is kept, with a ``contradiction`` finding; and what it had to assume is an ``assumption``.
The assumption, ambiguity and contradiction findings are also the task's ``warnings``.

Errors are ``InvalidProblem`` with one line: the field, the value that came, and how to fix it. They
are kept for what no reading can rescue: no text and no hint, a text about nothing ML-related,
impossible numbers (negative, not finite, a percentage above 100 for a fraction metric), regions
the carbon data lacks, and inputs beyond ``sustainml.limits`` (a text of more than 10,000 characters). ``require_complete`` adds what the pipeline needs to price a task (a dataset
size and a training region); the node applies it, ``encode`` alone does not, so that a bare text
can be encoded while the user is still typing.
"""

from __future__ import annotations

import copy
import math
import re
import time
from dataclasses import dataclass, field

from sustainml import msg
from sustainml.carbon.inputs import check_carbon_fields
from sustainml.carbon.intensity import RegionIntensity, resolve_region
from sustainml.exceptions import InvalidProblem, SustainMLError
from sustainml.limits import check_message

from .knowledge import DeployTarget, Knowledge, MetricInfo, TaskTypeInfo, load_knowledge
from .task_reading import Reading, prepare, read_task_type
from .text_constraints import Stated, read_constraints, region_code

__all__ = [
    "AMBIGUOUS_SHARE",
    "CLEAR_CONFIDENCE",
    "MAX_EPOCHS",
    "MIN_LATENCY_MS",
    "Knowledge",
    "check_problem",
    "MetricInfo",
    "TaskTypeInfo",
    "encode",
    "load_knowledge",
    "require_complete",
    "warm_up",
]

MAX_EPOCHS = 10_000
"""More planned epochs than this is taken for a typo, not a training plan."""

MIN_LATENCY_MS = 0.001
"""No model answers a request in under a microsecond; a smaller latency limit is a unit mistake."""

CLEAR_CONFIDENCE = 0.8
"""A reading at least this likely is clear; below it the text is ambiguous and other readings are listed."""

AMBIGUOUS_SHARE = 0.05
"""An ambiguous text lists the other readings at least this likely, up to ``MAX_READINGS`` in all."""

MAX_READINGS = 3

MAX_READ_CONFIDENCE = 0.99
"""Words are never certain: only a task_type_hint gives confidence 1."""

ASSUMED_HORIZON_DAYS = 365.0
"""The serving period assumed when the text gives a request rate but not for how long."""

_RELATIVE_TOLERANCE = 0.01  # a stated value within 1 % of the structured one agrees with it
_CUDA_DEVICE = re.compile(r"cuda(:\d+)?")
_QUOTE_CHARS = 80


def encode(
    problem: msg.UserInput, *, knowledge: Knowledge | None = None, profile: msg.DatasetProfile | None = None
) -> msg.EncodedTask:
    """The encoded task of ``problem``; raises ``InvalidProblem`` saying what to fix.

    ``profile`` is what the dataset profiler found in ``problem.dataset.path``: its rows fill an unknown
    ``dataset.num_samples`` and its sample shape an empty ``dataset.input_shape``.
    """
    check_problem(problem)
    if knowledge is None:
        knowledge = load_knowledge()
    text = _problem_text(problem)
    stated = read_constraints(text, knowledge) if text else []
    choice = _choose_task_type(problem, knowledge, _without(text, stated))
    draft = _Draft.of(problem)
    if profile is not None:
        _apply_profile(profile, draft, choice.task_type)
    _apply_stated(stated, draft, choice.task_type)
    _apply_deploy_target(draft, knowledge)
    _check_latency(draft.constraints.max_latency_ms)
    _check_quality_target(draft.constraints.quality_target, choice.task_type.metric)
    _check_usage(draft.usage)
    _check_epochs(draft.epochs)
    _check_measurement_budget(problem)
    regions = _resolve_regions(draft, problem.alternative_regions)
    check_carbon_fields(
        experiment_runs=int(problem.experiment_runs),
        allowed=problem.allowed_regions,
        overrides=problem.intensity_overrides,
        pue=float(problem.pue),
    )
    _note_reading(choice, draft)
    _note_assumptions(problem, choice, draft, regions, knowledge)

    task_type = choice.task_type
    findings = draft.findings
    return msg.EncodedTask(
        task_id=copy.deepcopy(problem.task_id),
        task_type=task_type.name,
        modality=task_type.modality,
        metric=task_type.metric.name,
        higher_is_better=task_type.metric.higher_is_better,
        confidence=choice.confidence,
        explanation=_explanation(choice, regions),
        warnings=[f.message for f in findings if f.kind != "inferred"],
        dataset=draft.dataset,
        constraints=draft.constraints,
        usage=draft.usage,
        epochs=draft.epochs,
        train_region=draft.train_region,
        inference_region=draft.inference_region,
        alternative_regions=list(problem.alternative_regions),
        allowed_hardware=draft.allowed_hardware,
        candidate_models=list(problem.candidate_models),
        findings=findings,
        readings=[_reading_msg(r) for r in choice.readings],
        dataset_profile=copy.deepcopy(profile) if profile is not None else msg.DatasetProfile(),
        experiment_runs=int(problem.experiment_runs),
        allowed_regions=list(problem.allowed_regions),
        intensity_overrides=copy.deepcopy(list(problem.intensity_overrides)),
        pue=float(problem.pue),
        measurement_budget_s=float(problem.measurement_budget_s),
        measurement_budget_j=float(problem.measurement_budget_j),
        reuse_only=bool(problem.reuse_only),
    )


def check_problem(problem: msg.UserInput) -> None:
    """The checks that need no reading, cheap for any input: numbers (finite, not negative) and sizes
    (``sustainml.limits``: a text of at most 10,000 characters...), each an ``InvalidProblem`` of one
    line. ``encode`` starts with them; the node applies them before handing a problem to a worker."""
    _check_numbers(problem)
    refusal = check_message(problem)   # before any reading: reading a text costs time in its length
    if refusal:
        raise InvalidProblem(refusal)


def require_complete(task: msg.EncodedTask) -> None:
    """Raise ``InvalidProblem`` when ``task`` lacks what the pipeline needs to price it.

    Training energy needs the number of training samples, and every footprint a training region.
    """
    if task.dataset.num_samples == 0:
        raise InvalidProblem(
            "dataset.num_samples is 0 (unknown), but training energy needs it: "
            "set dataset.num_samples to the number of training samples"
        )
    _region("train_region", task.train_region)


def warm_up(knowledge: Knowledge | None = None) -> float:
    """Load the sentence model and embed the exemplars now, as a node does at start-up. Units: s taken."""
    started = time.perf_counter()
    prepare(knowledge or load_knowledge())
    return time.perf_counter() - started


# ---------------------------------------------------------------- the draft of the encoded fields


@dataclass
class _Draft:
    """The fields of the encoded task while they are filled, with the findings about them."""

    dataset: msg.DatasetInfo
    constraints: msg.TaskConstraints
    usage: msg.UsageProfile
    epochs: int
    train_region: str
    inference_region: str
    allowed_hardware: list[str]
    findings: list[msg.Finding] = field(default_factory=list)

    @classmethod
    def of(cls, problem: msg.UserInput) -> _Draft:
        return cls(
            dataset=copy.deepcopy(problem.dataset),
            constraints=copy.deepcopy(problem.constraints),
            usage=copy.deepcopy(problem.usage),
            epochs=problem.epochs,
            train_region=problem.train_region,
            inference_region=problem.inference_region,
            allowed_hardware=list(problem.allowed_hardware),
        )

    def note(self, field_name: str, kind: str, message: str) -> None:
        self.findings.append(msg.Finding(field=field_name, kind=kind, message=message))

    def get(self, path: str) -> float | str:
        owner, name = self._owner(path)
        return getattr(owner, name)

    def set(self, path: str, value: float | str) -> None:
        owner, name = self._owner(path)
        current = getattr(owner, name)
        setattr(owner, name, type(current)(value) if not isinstance(current, str) else str(value))

    def _owner(self, path: str) -> tuple[object, str]:
        head, _, name = path.rpartition(".")
        return (getattr(self, head) if head else self), name


# ---------------------------------------------------------------- task type


@dataclass(frozen=True)
class _Choice:
    """The task type chosen for a problem, how sure the encoder is (0..1), why, and the other readings."""

    task_type: TaskTypeInfo
    confidence: float
    reason: str
    inferred: bool
    readings: tuple[Reading, ...] = ()
    text: str = ""
    no_task: float = 0.0

    @property
    def ambiguous(self) -> bool:
        return self.inferred and self.confidence < CLEAR_CONFIDENCE


def _problem_text(problem: msg.UserInput) -> str:
    return " ".join(part.strip() for part in (problem.text, problem.dataset.description) if part.strip())


_SAYS_NOTHING_OF_THE_TASK = frozenset({
    "constraints.max_latency_ms", "constraints.max_train_hours", "constraints.max_train_co2_g",
    "constraints.deploy_target", "usage.requests_per_day", "usage.horizon_days", "train_region", "epochs",
})
"""Fields whose words are left out of the text the task type is read from ("on a Raspberry Pi"); the
words of a dataset size ("30k photos") and a quality target ("top-1 accuracy") do say something of it."""


def _without(text: str, stated: list[Stated]) -> str:
    """``text`` without the words of the constraints that say nothing of the task type."""
    for s in sorted((s for s in stated if s.field in _SAYS_NOTHING_OF_THE_TASK), key=lambda s: s.start, reverse=True):
        text = text[: s.start] + " " + text[s.end :]
    return " ".join(text.split())


def _choose_task_type(problem: msg.UserInput, knowledge: Knowledge, text: str) -> _Choice:
    modality = _modality_hint(problem.modality_hint, knowledge)
    hint = _name_form(problem.task_type_hint)
    names = ", ".join(knowledge.task_type_names)
    if hint:
        if hint not in knowledge.task_types:
            raise InvalidProblem(
                f"task_type_hint {problem.task_type_hint!r} is not a known task type: use one of {names}"
            )
        task_type = knowledge.task_types[hint]
        given = Reading(task_type=task_type, confidence=1.0, similarity=1.0, exemplar="", cues=())
        return _Choice(task_type, 1.0, "given as task_type_hint", inferred=False, readings=(given,), text=text)
    if not text:
        raise InvalidProblem(
            "the text is empty and task_type_hint is not set: describe the goal in words "
            f"(e.g. 'classify photos of welds') or set task_type_hint to one of {names}"
        )
    reading = read_task_type(text, knowledge, modality=modality)
    if not reading.is_task:
        raise InvalidProblem(
            f"the text {_quote(text)} does not describe an ML task the encoder knows (no task or data "
            f"words, and no example closer than similarity {reading.closest:.2f}): "
            f"say what to predict from which data (e.g. 'forecast hourly demand from meter data'), "
            f"or set task_type_hint to one of {names}"
        )
    best = reading.best
    confidence = min(round(best.confidence, 2), MAX_READ_CONFIDENCE)
    readings = (best,)
    if confidence < CLEAR_CONFIDENCE:
        others = [r for r in reading.readings[1:] if r.confidence >= AMBIGUOUS_SHARE]
        readings = (best, *(others or reading.readings[1:2])[: MAX_READINGS - 1])
    return _Choice(
        best.task_type,
        confidence,
        f"read from the text: {best.why()}",
        inferred=True,
        readings=readings,
        text=text,
        no_task=reading.no_task,
    )


def _modality_hint(hint: str, knowledge: Knowledge) -> str:
    modality = _name_form(hint)
    if modality and modality not in knowledge.modality_cues:
        raise InvalidProblem(
            f"modality_hint {hint!r} is not a known modality: use one of {', '.join(knowledge.modalities)}, "
            "or leave it empty to infer it"
        )
    return modality


def _reading_msg(reading: Reading) -> msg.TaskReading:
    t = reading.task_type
    if not reading.exemplar:
        return msg.TaskReading(t.name, t.modality, t.metric.name, confidence=1.0, why="given as task_type_hint")
    confidence = min(round(reading.confidence, 2), MAX_READ_CONFIDENCE)
    return msg.TaskReading(t.name, t.modality, t.metric.name, confidence=confidence, why=reading.why())


def _name_form(text: str) -> str:
    return re.sub(r"[\s-]+", "_", text.strip().lower())


def _quote(text: str) -> str:
    text = " ".join(text.split())
    return repr(text if len(text) <= _QUOTE_CHARS else text[: _QUOTE_CHARS - 3] + "...")


# ---------------------------------------------------------------- values from the profile and the text


def _apply_profile(profile: msg.DatasetProfile, draft: _Draft, task_type: TaskTypeInfo) -> None:
    source = f"the profile of {profile.path}" if profile.path else "the dataset profile"
    if profile.rows:
        if draft.dataset.num_samples == 0:
            draft.dataset.num_samples = int(profile.rows)
            draft.note("dataset.num_samples", "inferred", f"num_samples = {profile.rows} from {source}")
        elif not _agrees(draft.dataset.num_samples, profile.rows):
            draft.note(
                "dataset.num_samples",
                "contradiction",
                f"dataset.num_samples is {draft.dataset.num_samples} but {source} counts {profile.rows} "
                f"samples: {draft.dataset.num_samples}, the given value, is used",
            )
    if profile.sample_shape and not draft.dataset.input_shape:
        draft.dataset.input_shape = list(profile.sample_shape)
        draft.note("dataset.input_shape", "inferred", f"input_shape = {list(profile.sample_shape)} from {source}")
    if profile.class_balance and draft.dataset.num_classes == 0 and task_type.metric.fraction \
            and task_type.name != "object_detection":
        draft.dataset.num_classes = len(profile.class_balance)
        draft.note("dataset.num_classes", "inferred",
                   f"num_classes = {len(profile.class_balance)} from the target column in {source}")
    data_modality = {"image_folder": "image", "csv": "tabular", "parquet": "tabular"}.get(profile.format, "")
    tables = {"tabular", "time_series"}
    if data_modality and data_modality != task_type.modality and not {data_modality, task_type.modality} <= tables:
        draft.note(
            "dataset.path",
            "contradiction",
            f"{source} is {profile.format} data but {task_type.name} works on {task_type.modality} data: "
            "check the dataset path, or set task_type_hint",
        )


def _apply_stated(stated: list[Stated], draft: _Draft, task_type: TaskTypeInfo) -> None:
    regions = [s for s in stated if s.field == "train_region"]
    for s in stated:
        if s.field == "train_region":
            continue
        if s.field == "constraints.quality_target":
            value = _quality_value(s, task_type.metric, draft)
            if value is None:
                continue
            _take(draft, s.field, value, s)
        else:
            _take(draft, s.field, s.value, s)
    if regions:
        _apply_regions(regions, draft)
    rate_from_text = any(f.field == "usage.requests_per_day" and f.kind == "inferred" for f in draft.findings)
    if rate_from_text and draft.usage.horizon_days == 0:
        draft.usage.horizon_days = ASSUMED_HORIZON_DAYS
        draft.note(
            "usage.horizon_days",
            "assumption",
            f"the text gives a request rate but not for how long the model is served: "
            f"horizon_days = {ASSUMED_HORIZON_DAYS:g} assumed; say e.g. 'for 2 years' or set usage.horizon_days",
        )


def _take(draft: _Draft, path: str, value: float | str, s: Stated, note: str = "") -> None:
    """Fill ``path`` from the words of ``s`` when the problem left it empty; say so, or say they disagree."""
    name = path.rpartition(".")[2]
    current = draft.get(path)
    shown = _show(value)
    if not current:
        draft.set(path, value)
        draft.note(path, "inferred", f"{name} = {shown} from the words {s.words!r}{note}")
    elif not _agrees(current, value):
        draft.note(
            path,
            "contradiction",
            f"{path} is {_show(current)} but the text says {shown} ({s.words!r}): "
            f"{_show(current)}, the given value, is used",
        )


def _quality_value(s: Stated, metric: MetricInfo, draft: _Draft) -> float | None:
    """The quality target the words of ``s`` give for ``metric``, or None (with a finding) when they can't."""
    words = _name_form(s.metric_words).replace("_", " ")
    if words not in {_name_form(p).replace("_", " ") for p in metric.phrases}:
        draft.note(
            "constraints.quality_target",
            "contradiction",
            f"the text asks for {s.words!r}, but this task's quality is measured as {metric.name} "
            f"({metric.description}): quality_target is not taken from the text; set it in {metric.name}",
        )
        return None
    value = float(s.value)
    if not metric.fraction:
        if s.percent:
            draft.note(
                "constraints.quality_target",
                "contradiction",
                f"the text gives {s.words!r} as a percentage, but {metric.name} is not a fraction "
                f"({metric.description}): quality_target is not taken from the text",
            )
            return None
        return value
    if s.percent or value > 1:
        if not 0 < value <= 100:
            draft.note(
                "constraints.quality_target",
                "contradiction",
                f"the text asks for {s.words!r}, which is no share of samples: quality_target is not taken from it",
            )
            return None
        return value / 100
    return value


def _apply_regions(regions: list[Stated], draft: _Draft) -> None:
    """A training region from the first region named (one for serving only if nothing else is named),
    a serving region from a region named for serving."""
    general = [s for s in regions if not s.serving]
    serving = [s for s in regions if s.serving]
    train = (general or serving)[0]
    _take_region(draft, "train_region", train)
    train_code = region_code(draft.train_region) or str(train.value)
    serve = next((s for s in serving if s.value != train_code), None)
    if serve is not None:
        _take_region(draft, "inference_region", serve)


def _take_region(draft: _Draft, name: str, s: Stated) -> None:
    current = getattr(draft, name)
    if not current.strip():
        setattr(draft, name, str(s.value))
        draft.note(name, "inferred", f"{name} = {s.value} ({_region_name(str(s.value))}) from the words {s.words!r}")
    elif region_code(current) and region_code(current) != s.value:
        draft.note(
            name,
            "contradiction",
            f"{name} is {current!r} but the text names {s.value} ({s.words!r}): {current!r}, the given value, "
            "is used",
        )


def _apply_deploy_target(draft: _Draft, knowledge: Knowledge) -> None:
    """The memory budget and hardware a deploy target implies, where the problem gives none."""
    name = draft.constraints.deploy_target.strip()
    if not name:
        return
    target = knowledge.deploy_targets.get(_name_form(name))
    if target is None:
        draft.note(
            "constraints.deploy_target",
            "assumption",
            f"deploy_target {name!r} is not a device class the encoder knows "
            f"({', '.join(knowledge.deploy_targets)}): no memory budget or hardware is implied",
        )
        return
    draft.constraints.deploy_target = target.name
    _implied_memory(draft, target)
    _implied_hardware(draft, target)


def _implied_memory(draft: _Draft, target: DeployTarget) -> None:
    if not target.memory_mb:
        return
    if draft.constraints.max_memory_mb == 0:
        draft.constraints.max_memory_mb = target.memory_mb
        draft.note(
            "constraints.max_memory_mb",
            "inferred",
            f"max_memory_mb = {target.memory_mb:g} from deploy target {target.name} ({target.description})",
        )
    elif draft.constraints.max_memory_mb > target.memory_mb:
        draft.note(
            "constraints.max_memory_mb",
            "contradiction",
            f"max_memory_mb is {draft.constraints.max_memory_mb:g}, more than a {target.name} leaves a model "
            f"({target.memory_mb:g} MB, {target.description}): {draft.constraints.max_memory_mb:g} is used",
        )


def _implied_hardware(draft: _Draft, target: DeployTarget) -> None:
    if not target.hardware:
        return
    wanted = ", ".join(target.hardware)
    if not draft.allowed_hardware:
        draft.allowed_hardware = list(target.hardware)
        draft.note("allowed_hardware", "inferred", f"allowed_hardware = {wanted} from deploy target {target.name}")
        return
    kinds = {_device_kind(entry) for entry in draft.allowed_hardware}
    if not kinds & set(target.hardware) and "host" not in kinds:
        draft.note(
            "allowed_hardware",
            "contradiction",
            f"deploy target {target.name} runs models on {wanted}, but allowed_hardware is "
            f"{draft.allowed_hardware}: measurements there will not tell how the model runs on the target; "
            f"add {wanted!r} to allowed_hardware",
        )


def _device_kind(entry: str) -> str:
    entry = entry.strip().lower()
    if entry == "cpu":
        return "cpu"
    return "cuda" if _CUDA_DEVICE.fullmatch(entry) else "host"


def _agrees(a: float | str, b: float | str) -> bool:
    if isinstance(a, str) or isinstance(b, str):
        return str(a) == str(b)
    return math.isclose(float(a), float(b), rel_tol=_RELATIVE_TOLERANCE)


def _show(value: float | str) -> str:
    return f"{value:g}" if isinstance(value, (int, float)) else str(value)


# ---------------------------------------------------------------- validation


def _check_numbers(problem: msg.UserInput) -> None:
    c, u = problem.constraints, problem.usage
    fields = {
        "constraints.quality_target": c.quality_target,
        "constraints.max_latency_ms": c.max_latency_ms,
        "constraints.max_train_hours": c.max_train_hours,
        "constraints.max_train_co2_g": c.max_train_co2_g,
        "constraints.max_memory_mb": c.max_memory_mb,
        "usage.requests_per_day": u.requests_per_day,
        "usage.horizon_days": u.horizon_days,
        "usage.batch_size": u.batch_size,
        "epochs": problem.epochs,
        "dataset.num_samples": problem.dataset.num_samples,
    }
    for name, value in fields.items():
        if not math.isfinite(value):
            raise InvalidProblem(f"{name} is {value}: give a finite number (0 = no limit / not given)")
        if value < 0:
            raise InvalidProblem(
                f"{name} is {value}, but it cannot be negative: give a value >= 0 (0 = no limit / not given)"
            )
    _check_latency(c.max_latency_ms)


def _check_latency(max_latency_ms: float) -> None:
    if 0 < max_latency_ms < MIN_LATENCY_MS:
        raise InvalidProblem(
            f"constraints.max_latency_ms is {max_latency_ms}, below {MIN_LATENCY_MS} ms, which no model "
            "can meet: give the limit in milliseconds (e.g. 50 for 50 ms), or 0 for no limit"
        )


def _check_quality_target(target: float, metric: MetricInfo) -> None:
    if target == 0 or not metric.fraction or 0 < target <= 1:
        return
    example = f"{target / 100:g}" if 1 < target <= 100 else "0.9"
    raise InvalidProblem(
        f"constraints.quality_target is {target:g}, but {metric.name} is a fraction in (0, 1]: "
        f"give a fraction such as {example}"
    )


def _check_usage(usage: msg.UsageProfile) -> None:
    if usage.requests_per_day > 0 and usage.horizon_days == 0:
        raise InvalidProblem(
            f"usage.requests_per_day is {usage.requests_per_day:g} but usage.horizon_days is 0: set "
            "horizon_days to how many days the model will be served, or requests_per_day to 0 for no serving"
        )
    if usage.horizon_days > 0 and usage.requests_per_day == 0:
        raise InvalidProblem(
            f"usage.horizon_days is {usage.horizon_days:g} but usage.requests_per_day is 0: set "
            "requests_per_day to the requests expected per day, or horizon_days to 0 for no serving"
        )


def _check_epochs(epochs: int) -> None:
    if epochs > MAX_EPOCHS:
        raise InvalidProblem(
            f"epochs is {epochs}, more than {MAX_EPOCHS}, which is not a plausible training plan: "
            "give the planned number of epochs (e.g. 90), or 0 for each model's catalogue recipe"
        )


def _check_measurement_budget(problem: msg.UserInput) -> None:
    for name, unit in (("measurement_budget_s", "seconds of device time"), ("measurement_budget_j", "joules")):
        value = float(getattr(problem, name))
        if not math.isfinite(value) or value < 0:
            raise InvalidProblem(
                f"{name} is {value:g}; give the {unit} each hardware node may spend measuring (0 = the node's "
                "default), or set reuse_only: true to measure nothing new"
            )


@dataclass(frozen=True)
class _Regions:
    train: RegionIntensity | None  # None: not given, and the text names none
    inference: RegionIntensity | None
    alternatives: tuple[RegionIntensity, ...]


def _resolve_regions(draft: _Draft, alternatives: list[str]) -> _Regions:
    train = _region("train_region", draft.train_region) if draft.train_region.strip() else None
    inference = _region("inference_region", draft.inference_region) if draft.inference_region.strip() else None
    return _Regions(
        train=train,
        inference=inference,
        alternatives=tuple(_region(f"alternative_regions[{i}]", text) for i, text in enumerate(alternatives)),
    )


def _region(field_name: str, text: str) -> RegionIntensity:
    try:
        return resolve_region(text)
    except SustainMLError as e:  # UnknownRegion, or InvalidProblem for an empty region
        raise InvalidProblem(f"{field_name} {text!r}: {e}") from e


def _region_name(code: str) -> str:
    try:
        return resolve_region(code).name
    except SustainMLError:
        return code


# ---------------------------------------------------------------- findings and explanation


def _note_reading(choice: _Choice, draft: _Draft) -> None:
    if not choice.inferred:
        return
    if choice.ambiguous:
        listed = ", ".join(f"{r.task_type.name} ({r.confidence:.2f})" for r in choice.readings)
        modalities = list(dict.fromkeys(r.task_type.modality for r in choice.readings))
        if choice.no_task >= AMBIGUOUS_SHARE:
            weak = f"; it reads as no known ML task with {choice.no_task:.2f}, so say what to predict from which data"
        elif len(modalities) > 1:
            weak = f"; it does not say whether the data are {' or '.join(m.replace('_', ' ') for m in modalities)}"
        else:
            weak = ""
        draft.note(
            "text",
            "ambiguity",
            f"the text {_quote(choice.text)} is ambiguous: it reads as {listed}{weak}; "
            f"{choice.task_type.name} is used: set task_type_hint, or say more about the goal, to choose",
        )
    else:
        draft.note(
            "task_type_hint",
            "assumption",
            f"task type {choice.task_type.name} inferred from the text with confidence {choice.confidence:.2f}: "
            "set task_type_hint if it is wrong",
        )


def _note_assumptions(
    problem: msg.UserInput, choice: _Choice, draft: _Draft, regions: _Regions, knowledge: Knowledge
) -> None:
    task_type = choice.task_type
    modality = _name_form(problem.modality_hint)
    if modality and modality != task_type.modality:
        draft.note(
            "modality_hint",
            "contradiction",
            f"modality_hint {problem.modality_hint!r} ignored: {task_type.name} works on {task_type.modality} data",
        )
    if choice.inferred is False and choice.text and _name_form(problem.task_type_hint):
        _note_hint_against_text(choice, draft, knowledge)
    if not task_type.supported:
        supported = ", ".join(t.name for t in knowledge.task_types.values() if t.supported)
        draft.note(
            "task_type",
            "assumption",
            f"{task_type.name} is a known task type but the model catalogue has no models for it yet "
            f"(it has: {supported}): the model provider may propose none",
        )
    if regions.train is None:
        draft.note(
            "train_region",
            "assumption",
            "train_region not given and the text names no region: footprints need one; set train_region "
            "(e.g. 'DEU', 'France', 'gcp:europe-west1') before submitting",
        )
    elif regions.inference is None:
        draft.note(
            "inference_region",
            "assumption",
            f"inference_region not given: the model is assumed to be served in train_region {draft.train_region!r}",
        )
    if draft.dataset.num_samples == 0:
        draft.note(
            "dataset.num_samples",
            "assumption",
            "dataset.num_samples not given and not found in the text or a dataset profile: training energy "
            "needs it; set dataset.num_samples (or dataset.path to a file to profile) before submitting",
        )
    if draft.epochs == 0:
        draft.note("epochs", "assumption", "epochs not given: each candidate's catalogue training recipe is assumed")
    if draft.usage.requests_per_day == 0 and draft.usage.horizon_days == 0:
        draft.note(
            "usage",
            "assumption",
            "usage not given (requests_per_day and horizon_days are 0): serving emissions count as 0; "
            "set both to see the footprint of inference",
        )
    for entry in draft.allowed_hardware:
        if _device_kind(entry) == "host":
            draft.note(
                "allowed_hardware",
                "assumption",
                f"allowed_hardware entry {entry!r} is taken as a host name (not 'cpu', 'cuda' or 'cuda:N')",
            )


def _note_hint_against_text(choice: _Choice, draft: _Draft, knowledge: Knowledge) -> None:
    """A hint that the text clearly contradicts: the hint is used, but the user should see the conflict."""
    try:
        reading = read_task_type(choice.text, knowledge)
    except SustainMLError:
        return
    best = reading.best
    if reading.is_task and best.task_type.name != choice.task_type.name and best.confidence >= CLEAR_CONFIDENCE:
        draft.note(
            "task_type_hint",
            "contradiction",
            f"task_type_hint is {choice.task_type.name} but the text {_quote(choice.text)} reads as "
            f"{best.task_type.name} (confidence {best.confidence:.2f}): {choice.task_type.name}, the hint, is used",
        )


def _explanation(choice: _Choice, regions: _Regions) -> str:
    task_type = choice.task_type
    direction = "higher" if task_type.metric.higher_is_better else "lower"
    parts = [f"Task type {task_type.name}, confidence {choice.confidence:.2f}, {choice.reason}."]
    if len(choice.readings) > 1:
        others = ", ".join(f"{r.task_type.name} ({r.confidence:.2f})" for r in choice.readings[1:])
        parts.append(f"Other readings: {others}.")
    parts.append(
        f"It works on {task_type.modality} data; quality is measured as {task_type.metric.name} "
        f"({task_type.metric.description}; {direction} is better)."
    )
    if task_type.families:
        parts.append(f"Model families for it: {', '.join(task_type.families)}.")
    if regions.train is None:
        parts.append("Training region not given.")
    else:
        parts.append(f"Training in {_describe(regions.train)}.")
        parts.append(f"Serving in {_describe(regions.inference or regions.train)}.")
    if regions.alternatives:
        parts.append(f"Also compared: {'; '.join(_describe(r) for r in regions.alternatives)}.")
    return " ".join(parts)


def _describe(region: RegionIntensity) -> str:
    year = f", {region.year}" if region.year else ""
    return f"{region.name} [{region.code}] at {region.intensity_g_per_kwh:g} gCO2e/kWh{year}"
