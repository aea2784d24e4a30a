"""Message types of the SustainML pipeline. GENERATED from idl/sustainml.idl: do not edit.

Regenerate with ``python -m sustainml._idl``; tests/test_idl.py fails when this file and the IDL
differ. Field comments and units are in the IDL.
"""

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Annotated

from cyclonedds.idl import IdlEnum, IdlStruct, types
from cyclonedds.idl.annotations import final, key

from sustainml._dds_compat import octet

__all__ = ['Alternative', 'BuilderSetting', 'CarbonFootprint', 'CatalogueReply', 'CatalogueRequest', 'ClassCount', 'ColumnProfile', 'ControlCommand', 'DatasetInfo', 'DatasetProfile', 'DeviceInfo', 'EncodeReply', 'EncodeRequest', 'EncodedTask', 'Equivalent', 'EvidenceRecord', 'EvidenceReply', 'EvidenceRequest', 'Finding', 'FootprintDetail', 'GreenerVariant', 'HardwareInventory', 'HardwareMeasurement', 'InventoryReply', 'InventoryRequest', 'JobMeasurement', 'ModelBuilder', 'ModelCandidate', 'ModelCandidates', 'NodeControl', 'NodeState', 'NodeStatus', 'NoteReply', 'NoteRequest', 'OnnxReply', 'OnnxRequest', 'OptionNote', 'QualityFigure', 'RegionFigure', 'ResultReply', 'ResultRequest', 'StageRecord', 'SubmitReply', 'SubmitRequest', 'TaskConstraints', 'TaskId', 'TaskOption', 'TaskReading', 'TaskResult', 'TaskState', 'TaskStatus', 'TrainingForecast', 'UsageProfile', 'UserInput', 'VERSION']

VERSION = 3


@dataclass
@final
class TaskId(IdlStruct, typename="sustainml::TaskId"):
    problem_id: str = ""
    iteration: types.uint32 = 0


class TaskState(IdlEnum, typename="sustainml::TaskState"):
    TASK_QUEUED = 0
    TASK_RUNNING = 1
    TASK_DONE = 2
    TASK_FAILED = 3
    TASK_CANCELLED = 4


class NodeState(IdlEnum, typename="sustainml::NodeState"):
    NODE_STARTING = 0
    NODE_IDLE = 1
    NODE_BUSY = 2
    NODE_ERROR = 3
    NODE_STOPPING = 4


class ControlCommand(IdlEnum, typename="sustainml::ControlCommand"):
    CONTROL_CANCEL_TASK = 0


@dataclass
@final
class TaskConstraints(IdlStruct, typename="sustainml::TaskConstraints"):
    quality_target: float = 0.0
    max_latency_ms: float = 0.0
    max_train_hours: float = 0.0
    max_train_co2_g: float = 0.0
    max_memory_mb: float = 0.0
    deploy_target: str = ""


@dataclass
@final
class UsageProfile(IdlStruct, typename="sustainml::UsageProfile"):
    requests_per_day: float = 0.0
    horizon_days: float = 0.0
    batch_size: types.uint32 = 0


@dataclass
@final
class DatasetInfo(IdlStruct, typename="sustainml::DatasetInfo"):
    path: str = ""
    description: str = ""
    num_samples: types.uint64 = 0
    input_shape: Annotated[list[types.uint32], types.sequence(types.uint32)] = field(default_factory=list)
    num_classes: types.uint32 = 0
    num_features: types.uint32 = 0
    target_column: str = ""


@dataclass
@final
class ColumnProfile(IdlStruct, typename="sustainml::ColumnProfile"):
    name: str = ""
    dtype: str = ""
    missing: types.uint64 = 0
    distinct: types.uint64 = 0


@dataclass
@final
class ClassCount(IdlStruct, typename="sustainml::ClassCount"):
    label: str = ""
    count: types.uint64 = 0


@dataclass
@final
class DatasetProfile(IdlStruct, typename="sustainml::DatasetProfile"):
    path: str = ""
    format: str = ""
    size_bytes: types.uint64 = 0
    rows: types.uint64 = 0
    columns: types.uint32 = 0
    column_profiles: Annotated[list[ColumnProfile], types.sequence(ColumnProfile)] = field(default_factory=list)
    missing_values: types.uint64 = 0
    target_column: str = ""
    class_balance: Annotated[list[ClassCount], types.sequence(ClassCount)] = field(default_factory=list)
    sample_shape: Annotated[list[types.uint32], types.sequence(types.uint32)] = field(default_factory=list)
    summary: str = ""


@dataclass
@final
class Finding(IdlStruct, typename="sustainml::Finding"):
    field: str = ""
    kind: str = ""
    message: str = ""


@dataclass
@final
class TaskReading(IdlStruct, typename="sustainml::TaskReading"):
    task_type: str = ""
    modality: str = ""
    metric: str = ""
    confidence: float = 0.0
    why: str = ""


@dataclass
@final
class RegionFigure(IdlStruct, typename="sustainml::RegionFigure"):
    region: str = ""
    intensity_g_per_kwh: float = 0.0
    source: str = ""


@dataclass
@final
class UserInput(IdlStruct, typename="sustainml::UserInput"):
    task_id: TaskId = field(default_factory=TaskId)
    text: str = ""
    task_type_hint: str = ""
    modality_hint: str = ""
    dataset: DatasetInfo = field(default_factory=DatasetInfo)
    constraints: TaskConstraints = field(default_factory=TaskConstraints)
    usage: UsageProfile = field(default_factory=UsageProfile)
    epochs: types.uint32 = 0
    train_region: str = ""
    inference_region: str = ""
    alternative_regions: Annotated[list[str], types.sequence(str)] = field(default_factory=list)
    allowed_hardware: Annotated[list[str], types.sequence(str)] = field(default_factory=list)
    candidate_models: Annotated[list[str], types.sequence(str)] = field(default_factory=list)
    experiment_runs: types.uint32 = 0
    allowed_regions: Annotated[list[str], types.sequence(str)] = field(default_factory=list)
    intensity_overrides: Annotated[list[RegionFigure], types.sequence(RegionFigure)] = field(default_factory=list)
    pue: float = 0.0
    measurement_budget_s: float = 0.0
    measurement_budget_j: float = 0.0
    reuse_only: bool = False


@dataclass
@final
class EncodedTask(IdlStruct, typename="sustainml::EncodedTask"):
    task_id: TaskId = field(default_factory=TaskId)
    task_type: str = ""
    modality: str = ""
    metric: str = ""
    higher_is_better: bool = False
    confidence: float = 0.0
    explanation: str = ""
    warnings: Annotated[list[str], types.sequence(str)] = field(default_factory=list)
    dataset: DatasetInfo = field(default_factory=DatasetInfo)
    constraints: TaskConstraints = field(default_factory=TaskConstraints)
    usage: UsageProfile = field(default_factory=UsageProfile)
    epochs: types.uint32 = 0
    train_region: str = ""
    inference_region: str = ""
    alternative_regions: Annotated[list[str], types.sequence(str)] = field(default_factory=list)
    allowed_hardware: Annotated[list[str], types.sequence(str)] = field(default_factory=list)
    candidate_models: Annotated[list[str], types.sequence(str)] = field(default_factory=list)
    findings: Annotated[list[Finding], types.sequence(Finding)] = field(default_factory=list)
    readings: Annotated[list[TaskReading], types.sequence(TaskReading)] = field(default_factory=list)
    dataset_profile: DatasetProfile = field(default_factory=DatasetProfile)
    experiment_runs: types.uint32 = 0
    allowed_regions: Annotated[list[str], types.sequence(str)] = field(default_factory=list)
    intensity_overrides: Annotated[list[RegionFigure], types.sequence(RegionFigure)] = field(default_factory=list)
    pue: float = 0.0
    measurement_budget_s: float = 0.0
    measurement_budget_j: float = 0.0
    reuse_only: bool = False


@dataclass
@final
class GreenerVariant(IdlStruct, typename="sustainml::GreenerVariant"):
    kind: str = ""
    name: str = ""
    description: str = ""
    quality_change: float = 0.0
    quality_effect: str = ""
    evidence: str = ""
    assumed: bool = False
    energy_factor: float = 0.0


@dataclass
@final
class BuilderSetting(IdlStruct, typename="sustainml::BuilderSetting"):
    name: str = ""
    is_list: bool = False
    booleans: Annotated[list[bool], types.sequence(bool)] = field(default_factory=list)
    integers: Annotated[list[types.int64], types.sequence(types.int64)] = field(default_factory=list)
    numbers: Annotated[list[float], types.sequence(float)] = field(default_factory=list)
    strings: Annotated[list[str], types.sequence(str)] = field(default_factory=list)


@dataclass
@final
class ModelBuilder(IdlStruct, typename="sustainml::ModelBuilder"):
    kind: str = ""
    name: str = ""
    settings: Annotated[list[BuilderSetting], types.sequence(BuilderSetting)] = field(default_factory=list)
    num_outputs: types.uint32 = 0


@dataclass
@final
class ModelCandidate(IdlStruct, typename="sustainml::ModelCandidate"):
    name: str = ""
    family: str = ""
    task_type: str = ""
    params: float = 0.0
    flops_per_sample: float = 0.0
    input_shape: Annotated[list[types.uint32], types.sequence(types.uint32)] = field(default_factory=list)
    quality_metric: str = ""
    quality_value: float = 0.0
    higher_is_better: bool = False
    quality_benchmark: str = ""
    quality_source: str = ""
    default_epochs: types.uint32 = 0
    default_batch_size: types.uint32 = 0
    reason: str = ""
    display_name: str = ""
    licence: str = ""
    library: str = ""
    builder: ModelBuilder = field(default_factory=ModelBuilder)
    variants: Annotated[list[GreenerVariant], types.sequence(GreenerVariant)] = field(default_factory=list)


@dataclass
@final
class ModelCandidates(IdlStruct, typename="sustainml::ModelCandidates"):
    task_id: TaskId = field(default_factory=TaskId)
    candidates: Annotated[list[ModelCandidate], types.sequence(ModelCandidate)] = field(default_factory=list)
    excluded: Annotated[list[str], types.sequence(str)] = field(default_factory=list)


@dataclass
@final
class DeviceInfo(IdlStruct, typename="sustainml::DeviceInfo"):
    id: str = ""
    name: str = ""
    cores: types.uint32 = 0
    memory_mb: float = 0.0
    power_limit_w: float = 0.0
    energy_method: str = ""


@dataclass
@final
class HardwareInventory(IdlStruct, typename="sustainml::HardwareInventory"):
    host: str = ""
    key("host")
    cpu_model: str = ""
    cpu_cores: types.uint32 = 0
    ram_mb: float = 0.0
    devices: Annotated[list[DeviceInfo], types.sequence(DeviceInfo)] = field(default_factory=list)
    software: str = ""


@dataclass
@final
class JobMeasurement(IdlStruct, typename="sustainml::JobMeasurement"):
    model: str = ""
    device: str = ""
    host: str = ""
    precision: str = ""
    batch_size: types.uint32 = 0
    latency_p50_ms: float = 0.0
    latency_p95_ms: float = 0.0
    throughput_per_s: float = 0.0
    energy_per_inference_j: float = 0.0
    energy_per_inference_uncertainty_j: float = 0.0
    total_energy_per_inference_j: float = 0.0
    train_batch_size: types.uint32 = 0
    train_step_ms: float = 0.0
    energy_per_train_sample_j: float = 0.0
    energy_per_train_sample_uncertainty_j: float = 0.0
    peak_memory_mb: float = 0.0
    active_power_w: float = 0.0
    idle_power_w: float = 0.0
    window_s: float = 0.0
    repetitions: types.uint32 = 0
    energy_method: str = ""
    assumptions: str = ""
    cached: bool = False
    basis: str = ""
    latency_p50_uncertainty_ms: float = 0.0
    not_measured_reason: str = ""
    measuring_s: float = 0.0
    measuring_energy_j: float = 0.0


@dataclass
@final
class HardwareMeasurement(IdlStruct, typename="sustainml::HardwareMeasurement"):
    task_id: TaskId = field(default_factory=TaskId)
    host: str = ""
    measurements: Annotated[list[JobMeasurement], types.sequence(JobMeasurement)] = field(default_factory=list)
    excluded: Annotated[list[str], types.sequence(str)] = field(default_factory=list)
    message_index: types.uint32 = 0
    plan_done: bool = False
    budget_s: float = 0.0
    measuring_s: float = 0.0
    measuring_energy_j: float = 0.0
    plan_note: str = ""


@dataclass
@final
class Alternative(IdlStruct, typename="sustainml::Alternative"):
    kind: str = ""
    region: str = ""
    device: str = ""
    host: str = ""
    intensity_g_per_kwh: float = 0.0
    total_co2_g: float = 0.0
    saving_g: float = 0.0
    latency_change_ms: float = 0.0
    note: str = ""


@dataclass
@final
class Equivalent(IdlStruct, typename="sustainml::Equivalent"):
    amount: float = 0.0
    unit: str = ""
    source: str = ""


@dataclass
@final
class FootprintDetail(IdlStruct, typename="sustainml::FootprintDetail"):
    model: str = ""
    device: str = ""
    host: str = ""
    region: str = ""
    intensity_g_per_kwh: float = 0.0
    train_region: str = ""
    train_intensity_g_per_kwh: float = 0.0
    intensity_source: str = ""
    pue: float = 0.0
    train_energy_kwh: float = 0.0
    inference_energy_kwh: float = 0.0
    training_co2_g: float = 0.0
    inference_co2_g: float = 0.0
    total_co2_g: float = 0.0
    sci_g_per_request: float = 0.0
    experiment_runs: types.uint32 = 0
    experimentation_energy_kwh: float = 0.0
    experimentation_co2_g: float = 0.0
    train_steps: types.uint64 = 0
    device_embodied_kg: float = 0.0
    device_lifetime_years: float = 0.0
    embodied_g_per_request: float = 0.0
    embodied_co2_g: float = 0.0
    embodied_source: str = ""
    pue_source: str = ""
    intensity_year: types.int32 = 0
    total_co2_uncertainty_g: float = 0.0
    sci_uncertainty_g_per_request: float = 0.0
    greener_regions: Annotated[list[Alternative], types.sequence(Alternative)] = field(default_factory=list)
    equivalents: Annotated[list[Equivalent], types.sequence(Equivalent)] = field(default_factory=list)


@dataclass
@final
class CarbonFootprint(IdlStruct, typename="sustainml::CarbonFootprint"):
    task_id: TaskId = field(default_factory=TaskId)
    host: str = ""
    footprints: Annotated[list[FootprintDetail], types.sequence(FootprintDetail)] = field(default_factory=list)
    message_index: types.uint32 = 0
    measuring_energy_j: float = 0.0
    measuring_co2_g: float = 0.0


@dataclass
@final
class StageRecord(IdlStruct, typename="sustainml::StageRecord"):
    task_id: TaskId = field(default_factory=TaskId)
    key("task_id")
    run: str = ""
    key("run")
    stage: str = ""
    key("stage")
    host: str = ""
    devices: str = ""
    started_unix_s: float = 0.0
    duration_s: float = 0.0
    energy_j: float = 0.0
    energy_uncertainty_j: float = 0.0
    energy_method: str = ""
    assumptions: str = ""
    region: str = ""
    intensity_g_per_kwh: float = 0.0
    pue: float = 0.0
    co2_g: float = 0.0
    co2_uncertainty_g: float = 0.0
    error: str = ""


@dataclass
@final
class TrainingForecast(IdlStruct, typename="sustainml::TrainingForecast"):
    task_id: TaskId = field(default_factory=TaskId)
    key("task_id")
    run: str = ""
    key("run")
    host: str = ""
    epochs_done: types.uint32 = 0
    epochs_planned: types.uint32 = 0
    energy_so_far_j: float = 0.0
    predicted_energy_j: float = 0.0
    predicted_energy_low_j: float = 0.0
    predicted_energy_high_j: float = 0.0
    interval_level: float = 0.0
    predicted_co2_g: float = 0.0
    predicted_co2_low_g: float = 0.0
    predicted_co2_high_g: float = 0.0
    budget_co2_g: float = 0.0
    exceeds_budget: bool = False
    energy_method: str = ""
    note: str = ""
    updated_unix_s: float = 0.0


@dataclass
@final
class QualityFigure(IdlStruct, typename="sustainml::QualityFigure"):
    metric: str = ""
    value: float = 0.0
    higher_is_better: bool = False


@dataclass
@final
class TaskOption(IdlStruct, typename="sustainml::TaskOption"):
    model: str = ""
    device: str = ""
    host: str = ""
    region: str = ""
    quality: QualityFigure = field(default_factory=QualityFigure)
    latency_ms: float = 0.0
    energy_per_inference_j: float = 0.0
    energy_per_inference_uncertainty_j: float = 0.0
    train_energy_kwh: float = 0.0
    energy_method: str = ""
    intensity_g_per_kwh: float = 0.0
    pue: float = 0.0
    training_co2_g: float = 0.0
    inference_co2_g: float = 0.0
    total_co2_g: float = 0.0
    sci_g_per_request: float = 0.0
    meets_constraints: bool = False
    pareto: bool = False
    rank: types.uint32 = 0
    note: str = ""
    footprint: FootprintDetail = field(default_factory=FootprintDetail)
    alternatives: Annotated[list[Alternative], types.sequence(Alternative)] = field(default_factory=list)
    basis: str = ""
    latency_uncertainty_ms: float = 0.0


@dataclass
@final
class TaskResult(IdlStruct, typename="sustainml::TaskResult"):
    task_id: TaskId = field(default_factory=TaskId)
    key("task_id")
    state: TaskState = TaskState.TASK_QUEUED
    error: str = ""
    failed_node: str = ""
    explanation: str = ""
    task_type: str = ""
    metric: str = ""
    options: Annotated[list[TaskOption], types.sequence(TaskOption)] = field(default_factory=list)
    submitted_unix_s: float = 0.0
    finished_unix_s: float = 0.0
    modality: str = ""
    confidence: float = 0.0
    findings: Annotated[list[Finding], types.sequence(Finding)] = field(default_factory=list)
    readings: Annotated[list[TaskReading], types.sequence(TaskReading)] = field(default_factory=list)
    dataset_profile: DatasetProfile = field(default_factory=DatasetProfile)
    candidates: Annotated[list[ModelCandidate], types.sequence(ModelCandidate)] = field(default_factory=list)
    excluded: Annotated[list[str], types.sequence(str)] = field(default_factory=list)
    stages: Annotated[list[StageRecord], types.sequence(StageRecord)] = field(default_factory=list)
    stages_summary: str = ""
    forecasts: Annotated[list[TrainingForecast], types.sequence(TrainingForecast)] = field(default_factory=list)
    problem: UserInput = field(default_factory=UserInput)
    revision: types.uint32 = 0
    measuring_s: float = 0.0
    measuring_energy_j: float = 0.0
    measuring_co2_g: float = 0.0
    measuring_note: str = ""


@dataclass
@final
class TaskStatus(IdlStruct, typename="sustainml::TaskStatus"):
    task_id: TaskId = field(default_factory=TaskId)
    key("task_id")
    state: TaskState = TaskState.TASK_QUEUED
    stage: str = ""
    progress: float = 0.0
    message: str = ""
    updated_unix_s: float = 0.0


@dataclass
@final
class NodeStatus(IdlStruct, typename="sustainml::NodeStatus"):
    node: str = ""
    key("node")
    kind: str = ""
    host: str = ""
    pid: types.uint32 = 0
    state: NodeState = NodeState.NODE_STARTING
    task_id: TaskId = field(default_factory=TaskId)
    progress: float = 0.0
    message: str = ""
    heartbeat_unix_s: float = 0.0
    started_unix_s: float = 0.0


@dataclass
@final
class NodeControl(IdlStruct, typename="sustainml::NodeControl"):
    target_node: str = ""
    command: ControlCommand = ControlCommand.CONTROL_CANCEL_TASK
    task_id: TaskId = field(default_factory=TaskId)
    reason: str = ""


@dataclass
@final
class SubmitRequest(IdlStruct, typename="sustainml::SubmitRequest"):
    request_id: str = ""
    problem: UserInput = field(default_factory=UserInput)


@dataclass
@final
class SubmitReply(IdlStruct, typename="sustainml::SubmitReply"):
    request_id: str = ""
    accepted: bool = False
    task_id: TaskId = field(default_factory=TaskId)
    error: str = ""


@dataclass
@final
class CatalogueRequest(IdlStruct, typename="sustainml::CatalogueRequest"):
    request_id: str = ""
    task_type: str = ""


@dataclass
@final
class CatalogueReply(IdlStruct, typename="sustainml::CatalogueReply"):
    request_id: str = ""
    models: Annotated[list[ModelCandidate], types.sequence(ModelCandidate)] = field(default_factory=list)
    error: str = ""


@dataclass
@final
class InventoryRequest(IdlStruct, typename="sustainml::InventoryRequest"):
    request_id: str = ""


@dataclass
@final
class InventoryReply(IdlStruct, typename="sustainml::InventoryReply"):
    request_id: str = ""
    inventory: HardwareInventory = field(default_factory=HardwareInventory)
    error: str = ""


@dataclass
@final
class EncodeRequest(IdlStruct, typename="sustainml::EncodeRequest"):
    request_id: str = ""
    problem: UserInput = field(default_factory=UserInput)


@dataclass
@final
class EncodeReply(IdlStruct, typename="sustainml::EncodeReply"):
    request_id: str = ""
    task: EncodedTask = field(default_factory=EncodedTask)
    error: str = ""


@dataclass
@final
class OnnxRequest(IdlStruct, typename="sustainml::OnnxRequest"):
    request_id: str = ""
    model: str = ""
    input_shape: Annotated[list[types.uint32], types.sequence(types.uint32)] = field(default_factory=list)
    batch_size: types.uint32 = 0


@dataclass
@final
class OnnxReply(IdlStruct, typename="sustainml::OnnxReply"):
    request_id: str = ""
    model: str = ""
    onnx: Annotated[Sequence[int], types.sequence(octet)] = field(default_factory=list)
    input_shape: Annotated[list[types.uint32], types.sequence(types.uint32)] = field(default_factory=list)
    input_name: str = ""
    output_name: str = ""
    error: str = ""


@dataclass
@final
class ResultRequest(IdlStruct, typename="sustainml::ResultRequest"):
    request_id: str = ""
    problem_id: str = ""
    iteration: types.uint32 = 0
    limit: types.uint32 = 0
    before_unix_s: float = 0.0


@dataclass
@final
class ResultReply(IdlStruct, typename="sustainml::ResultReply"):
    request_id: str = ""
    results: Annotated[list[TaskResult], types.sequence(TaskResult)] = field(default_factory=list)
    next_before_unix_s: float = 0.0
    error: str = ""


@dataclass
@final
class EvidenceRecord(IdlStruct, typename="sustainml::EvidenceRecord"):
    task_id: TaskId = field(default_factory=TaskId)
    task_type: str = ""
    received_unix_s: float = 0.0
    measurement: JobMeasurement = field(default_factory=JobMeasurement)


@dataclass
@final
class OptionNote(IdlStruct, typename="sustainml::OptionNote"):
    note_id: types.uint32 = 0
    task_id: TaskId = field(default_factory=TaskId)
    model: str = ""
    device: str = ""
    host: str = ""
    region: str = ""
    author: str = ""
    text: str = ""
    created_unix_s: float = 0.0


@dataclass
@final
class EvidenceRequest(IdlStruct, typename="sustainml::EvidenceRequest"):
    request_id: str = ""
    task_type: str = ""
    device: str = ""
    model: str = ""
    host: str = ""
    problem_id: str = ""
    iteration: types.uint32 = 0
    limit: types.uint32 = 0


@dataclass
@final
class EvidenceReply(IdlStruct, typename="sustainml::EvidenceReply"):
    request_id: str = ""
    records: Annotated[list[EvidenceRecord], types.sequence(EvidenceRecord)] = field(default_factory=list)
    notes: Annotated[list[OptionNote], types.sequence(OptionNote)] = field(default_factory=list)
    error: str = ""


@dataclass
@final
class NoteRequest(IdlStruct, typename="sustainml::NoteRequest"):
    request_id: str = ""
    note: OptionNote = field(default_factory=OptionNote)


@dataclass
@final
class NoteReply(IdlStruct, typename="sustainml::NoteReply"):
    request_id: str = ""
    accepted: bool = False
    note: OptionNote = field(default_factory=OptionNote)
    error: str = ""
