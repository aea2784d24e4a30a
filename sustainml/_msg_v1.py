"""Message types of interface version 1. GENERATED from idl/history/sustainml_v1.idl: do not edit.

Only to read what version-1 code stored (sustainml.msg_upgrade); never published. Regenerate with
``python -m sustainml._idl --legacy-v1``; tests/test_msg_upgrade.py fails when this file and the IDL differ.
"""

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Annotated

from cyclonedds.idl import IdlEnum, IdlStruct, types
from cyclonedds.idl.annotations import appendable, final, key

from sustainml._dds_compat import octet

__all__ = ['Alternative', 'CarbonFootprint', 'CatalogueReply', 'CatalogueRequest', 'ClassCount', 'ColumnProfile', 'Constraints', 'ControlCommand', 'DatasetInfo', 'DatasetProfile', 'Device', 'EncodeReply', 'EncodeRequest', 'EncodedTask', 'Equivalent', 'EvidenceRecord', 'EvidenceReply', 'EvidenceRequest', 'Finding', 'Footprint', 'GreenerVariant', 'HardwareInventory', 'HardwareMeasurement', 'InventoryReply', 'InventoryRequest', 'Measurement', 'ModelCandidate', 'ModelCandidates', 'NodeControl', 'NodeState', 'NodeStatus', 'NoteReply', 'NoteRequest', 'OnnxReply', 'OnnxRequest', 'OptionNote', 'Quality', 'RegionFigure', 'ResultReply', 'ResultRequest', 'StageRecord', 'SubmitReply', 'SubmitRequest', 'TaskId', 'TaskOption', 'TaskReading', 'TaskResult', 'TaskState', 'TaskStatus', 'TrainingForecast', 'Usage', 'UserInput']


@dataclass
@final
class TaskId(IdlStruct, typename="sustainml_v1::TaskId"):
    problem_id: str = ""
    iteration: types.uint32 = 0


class TaskState(IdlEnum, typename="sustainml_v1::TaskState"):
    TASK_QUEUED = 0
    TASK_RUNNING = 1
    TASK_DONE = 2
    TASK_FAILED = 3
    TASK_CANCELLED = 4


class NodeState(IdlEnum, typename="sustainml_v1::NodeState"):
    NODE_STARTING = 0
    NODE_IDLE = 1
    NODE_BUSY = 2
    NODE_ERROR = 3
    NODE_STOPPING = 4


class ControlCommand(IdlEnum, typename="sustainml_v1::ControlCommand"):
    CONTROL_CANCEL_TASK = 0


@dataclass
@appendable
class Constraints(IdlStruct, typename="sustainml_v1::Constraints"):
    quality_target: float = 0.0
    max_latency_ms: float = 0.0
    max_train_hours: float = 0.0
    max_train_co2_g: float = 0.0
    max_memory_mb: float = 0.0
    deploy_target: str = ""


@dataclass
@appendable
class Usage(IdlStruct, typename="sustainml_v1::Usage"):
    requests_per_day: float = 0.0
    horizon_days: float = 0.0
    batch_size: types.uint32 = 0


@dataclass
@appendable
class DatasetInfo(IdlStruct, typename="sustainml_v1::DatasetInfo"):
    path: str = ""
    description: str = ""
    num_samples: types.uint64 = 0
    input_shape: Annotated[list[types.uint32], types.sequence(types.uint32)] = field(default_factory=list)
    num_classes: types.uint32 = 0
    num_features: types.uint32 = 0
    target_column: str = ""


@dataclass
@appendable
class ColumnProfile(IdlStruct, typename="sustainml_v1::ColumnProfile"):
    name: str = ""
    dtype: str = ""
    missing: types.uint64 = 0
    distinct: types.uint64 = 0


@dataclass
@appendable
class ClassCount(IdlStruct, typename="sustainml_v1::ClassCount"):
    label: str = ""
    count: types.uint64 = 0


@dataclass
@appendable
class DatasetProfile(IdlStruct, typename="sustainml_v1::DatasetProfile"):
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
@appendable
class Finding(IdlStruct, typename="sustainml_v1::Finding"):
    field: str = ""
    kind: str = ""
    message: str = ""


@dataclass
@appendable
class TaskReading(IdlStruct, typename="sustainml_v1::TaskReading"):
    task_type: str = ""
    modality: str = ""
    metric: str = ""
    confidence: float = 0.0
    why: str = ""


@dataclass
@appendable
class RegionFigure(IdlStruct, typename="sustainml_v1::RegionFigure"):
    region: str = ""
    intensity_g_per_kwh: float = 0.0
    source: str = ""


@dataclass
@appendable
class UserInput(IdlStruct, typename="sustainml_v1::UserInput"):
    task_id: TaskId = field(default_factory=TaskId)
    text: str = ""
    task_type_hint: str = ""
    modality_hint: str = ""
    dataset: DatasetInfo = field(default_factory=DatasetInfo)
    constraints: Constraints = field(default_factory=Constraints)
    usage: Usage = field(default_factory=Usage)
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
@appendable
class EncodedTask(IdlStruct, typename="sustainml_v1::EncodedTask"):
    task_id: TaskId = field(default_factory=TaskId)
    task_type: str = ""
    modality: str = ""
    metric: str = ""
    higher_is_better: bool = False
    confidence: float = 0.0
    explanation: str = ""
    warnings: Annotated[list[str], types.sequence(str)] = field(default_factory=list)
    dataset: DatasetInfo = field(default_factory=DatasetInfo)
    constraints: Constraints = field(default_factory=Constraints)
    usage: Usage = field(default_factory=Usage)
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
@appendable
class GreenerVariant(IdlStruct, typename="sustainml_v1::GreenerVariant"):
    kind: str = ""
    name: str = ""
    description: str = ""
    quality_change: float = 0.0
    quality_effect: str = ""
    evidence: str = ""
    assumed: bool = False
    energy_factor: float = 0.0


@dataclass
@appendable
class ModelCandidate(IdlStruct, typename="sustainml_v1::ModelCandidate"):
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
    variants: Annotated[list[GreenerVariant], types.sequence(GreenerVariant)] = field(default_factory=list)


@dataclass
@appendable
class ModelCandidates(IdlStruct, typename="sustainml_v1::ModelCandidates"):
    task_id: TaskId = field(default_factory=TaskId)
    candidates: Annotated[list[ModelCandidate], types.sequence(ModelCandidate)] = field(default_factory=list)
    excluded: Annotated[list[str], types.sequence(str)] = field(default_factory=list)


@dataclass
@appendable
class Device(IdlStruct, typename="sustainml_v1::Device"):
    id: str = ""
    name: str = ""
    cores: types.uint32 = 0
    memory_mb: float = 0.0
    power_limit_w: float = 0.0
    energy_method: str = ""


@dataclass
@appendable
class HardwareInventory(IdlStruct, typename="sustainml_v1::HardwareInventory"):
    host: str = ""
    key("host")
    cpu_model: str = ""
    cpu_cores: types.uint32 = 0
    ram_mb: float = 0.0
    devices: Annotated[list[Device], types.sequence(Device)] = field(default_factory=list)
    software: str = ""


@dataclass
@appendable
class Measurement(IdlStruct, typename="sustainml_v1::Measurement"):
    model: str = ""
    device: str = ""
    host: str = ""
    precision: str = ""
    batch_size: types.uint32 = 0
    latency_ms_p50: float = 0.0
    latency_ms_p95: float = 0.0
    throughput_per_s: float = 0.0
    energy_j_per_inference: float = 0.0
    energy_j_per_inference_uncertainty: float = 0.0
    total_energy_j_per_inference: float = 0.0
    train_batch_size: types.uint32 = 0
    train_step_ms: float = 0.0
    energy_j_per_train_sample: float = 0.0
    energy_j_per_train_sample_uncertainty: float = 0.0
    peak_memory_mb: float = 0.0
    active_power_w: float = 0.0
    idle_power_w: float = 0.0
    window_s: float = 0.0
    repetitions: types.uint32 = 0
    energy_method: str = ""
    assumptions: str = ""
    cached: bool = False
    basis: str = ""
    latency_ms_p50_uncertainty: float = 0.0
    not_measured_reason: str = ""
    measuring_s: float = 0.0
    measuring_energy_j: float = 0.0


@dataclass
@appendable
class HardwareMeasurement(IdlStruct, typename="sustainml_v1::HardwareMeasurement"):
    task_id: TaskId = field(default_factory=TaskId)
    host: str = ""
    measurements: Annotated[list[Measurement], types.sequence(Measurement)] = field(default_factory=list)
    excluded: Annotated[list[str], types.sequence(str)] = field(default_factory=list)
    message_index: types.uint32 = 0
    plan_done: bool = False
    budget_s: float = 0.0
    measuring_s: float = 0.0
    measuring_energy_j: float = 0.0
    plan_note: str = ""


@dataclass
@appendable
class Alternative(IdlStruct, typename="sustainml_v1::Alternative"):
    kind: str = ""
    region: str = ""
    device: str = ""
    host: str = ""
    intensity_g_per_kwh: float = 0.0
    co2_g_total: float = 0.0
    saving_g: float = 0.0
    latency_change_ms: float = 0.0
    note: str = ""


@dataclass
@appendable
class Equivalent(IdlStruct, typename="sustainml_v1::Equivalent"):
    amount: float = 0.0
    unit: str = ""
    source: str = ""


@dataclass
@appendable
class Footprint(IdlStruct, typename="sustainml_v1::Footprint"):
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
    co2_g_training: float = 0.0
    co2_g_inference: float = 0.0
    co2_g_total: float = 0.0
    sci_g_per_request: float = 0.0
    experiment_runs: types.uint32 = 0
    experimentation_energy_kwh: float = 0.0
    co2_g_experimentation: float = 0.0
    train_steps: types.uint64 = 0
    embodied_kg_device: float = 0.0
    device_lifetime_years: float = 0.0
    embodied_g_per_request: float = 0.0
    co2_g_embodied: float = 0.0
    embodied_source: str = ""
    pue_source: str = ""
    intensity_year: types.int32 = 0
    co2_g_total_uncertainty: float = 0.0
    sci_g_per_request_uncertainty: float = 0.0
    greener_regions: Annotated[list[Alternative], types.sequence(Alternative)] = field(default_factory=list)
    equivalents: Annotated[list[Equivalent], types.sequence(Equivalent)] = field(default_factory=list)


@dataclass
@appendable
class CarbonFootprint(IdlStruct, typename="sustainml_v1::CarbonFootprint"):
    task_id: TaskId = field(default_factory=TaskId)
    host: str = ""
    footprints: Annotated[list[Footprint], types.sequence(Footprint)] = field(default_factory=list)
    message_index: types.uint32 = 0
    measuring_energy_j: float = 0.0
    co2_g_measuring: float = 0.0


@dataclass
@appendable
class StageRecord(IdlStruct, typename="sustainml_v1::StageRecord"):
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
    energy_j_uncertainty: float = 0.0
    energy_method: str = ""
    assumptions: str = ""
    region: str = ""
    intensity_g_per_kwh: float = 0.0
    pue: float = 0.0
    co2_g: float = 0.0
    co2_g_uncertainty: float = 0.0
    error: str = ""


@dataclass
@appendable
class TrainingForecast(IdlStruct, typename="sustainml_v1::TrainingForecast"):
    task_id: TaskId = field(default_factory=TaskId)
    key("task_id")
    run: str = ""
    key("run")
    host: str = ""
    epochs_done: types.uint32 = 0
    epochs_planned: types.uint32 = 0
    energy_j_so_far: float = 0.0
    predicted_energy_j: float = 0.0
    predicted_energy_j_low: float = 0.0
    predicted_energy_j_high: float = 0.0
    interval_level: float = 0.0
    predicted_co2_g: float = 0.0
    predicted_co2_g_low: float = 0.0
    predicted_co2_g_high: float = 0.0
    budget_co2_g: float = 0.0
    exceeds_budget: bool = False
    energy_method: str = ""
    note: str = ""
    updated_unix_s: float = 0.0


@dataclass
@appendable
class Quality(IdlStruct, typename="sustainml_v1::Quality"):
    metric: str = ""
    value: float = 0.0
    higher_is_better: bool = False


@dataclass
@appendable
class TaskOption(IdlStruct, typename="sustainml_v1::TaskOption"):
    model: str = ""
    device: str = ""
    host: str = ""
    region: str = ""
    quality: Quality = field(default_factory=Quality)
    latency_ms: float = 0.0
    energy_j_per_inference: float = 0.0
    energy_j_per_inference_uncertainty: float = 0.0
    train_energy_kwh: float = 0.0
    energy_method: str = ""
    intensity_g_per_kwh: float = 0.0
    pue: float = 0.0
    co2_g_training: float = 0.0
    co2_g_inference: float = 0.0
    co2_g_total: float = 0.0
    sci_g_per_request: float = 0.0
    meets_constraints: bool = False
    pareto: bool = False
    rank: types.uint32 = 0
    note: str = ""
    footprint: Footprint = field(default_factory=Footprint)
    alternatives: Annotated[list[Alternative], types.sequence(Alternative)] = field(default_factory=list)
    basis: str = ""
    latency_ms_uncertainty: float = 0.0


@dataclass
@appendable
class TaskResult(IdlStruct, typename="sustainml_v1::TaskResult"):
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
    co2_g_measuring: float = 0.0
    measuring_note: str = ""


@dataclass
@appendable
class TaskStatus(IdlStruct, typename="sustainml_v1::TaskStatus"):
    task_id: TaskId = field(default_factory=TaskId)
    key("task_id")
    state: TaskState = TaskState.TASK_QUEUED
    stage: str = ""
    progress: float = 0.0
    message: str = ""
    updated_unix_s: float = 0.0


@dataclass
@appendable
class NodeStatus(IdlStruct, typename="sustainml_v1::NodeStatus"):
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
@appendable
class NodeControl(IdlStruct, typename="sustainml_v1::NodeControl"):
    target_node: str = ""
    command: ControlCommand = ControlCommand.CONTROL_CANCEL_TASK
    task_id: TaskId = field(default_factory=TaskId)
    reason: str = ""


@dataclass
@appendable
class SubmitRequest(IdlStruct, typename="sustainml_v1::SubmitRequest"):
    request_id: str = ""
    problem: UserInput = field(default_factory=UserInput)


@dataclass
@appendable
class SubmitReply(IdlStruct, typename="sustainml_v1::SubmitReply"):
    request_id: str = ""
    accepted: bool = False
    task_id: TaskId = field(default_factory=TaskId)
    error: str = ""


@dataclass
@appendable
class CatalogueRequest(IdlStruct, typename="sustainml_v1::CatalogueRequest"):
    request_id: str = ""
    task_type: str = ""


@dataclass
@appendable
class CatalogueReply(IdlStruct, typename="sustainml_v1::CatalogueReply"):
    request_id: str = ""
    models: Annotated[list[ModelCandidate], types.sequence(ModelCandidate)] = field(default_factory=list)
    error: str = ""


@dataclass
@appendable
class InventoryRequest(IdlStruct, typename="sustainml_v1::InventoryRequest"):
    request_id: str = ""


@dataclass
@appendable
class InventoryReply(IdlStruct, typename="sustainml_v1::InventoryReply"):
    request_id: str = ""
    inventory: HardwareInventory = field(default_factory=HardwareInventory)
    error: str = ""


@dataclass
@appendable
class EncodeRequest(IdlStruct, typename="sustainml_v1::EncodeRequest"):
    request_id: str = ""
    problem: UserInput = field(default_factory=UserInput)


@dataclass
@appendable
class EncodeReply(IdlStruct, typename="sustainml_v1::EncodeReply"):
    request_id: str = ""
    task: EncodedTask = field(default_factory=EncodedTask)
    error: str = ""


@dataclass
@appendable
class OnnxRequest(IdlStruct, typename="sustainml_v1::OnnxRequest"):
    request_id: str = ""
    model: str = ""
    input_shape: Annotated[list[types.uint32], types.sequence(types.uint32)] = field(default_factory=list)
    batch_size: types.uint32 = 0


@dataclass
@appendable
class OnnxReply(IdlStruct, typename="sustainml_v1::OnnxReply"):
    request_id: str = ""
    model: str = ""
    onnx: Annotated[Sequence[int], types.sequence(octet)] = field(default_factory=list)
    input_shape: Annotated[list[types.uint32], types.sequence(types.uint32)] = field(default_factory=list)
    input_name: str = ""
    output_name: str = ""
    error: str = ""


@dataclass
@appendable
class ResultRequest(IdlStruct, typename="sustainml_v1::ResultRequest"):
    request_id: str = ""
    problem_id: str = ""
    iteration: types.uint32 = 0
    limit: types.uint32 = 0


@dataclass
@appendable
class ResultReply(IdlStruct, typename="sustainml_v1::ResultReply"):
    request_id: str = ""
    results: Annotated[list[TaskResult], types.sequence(TaskResult)] = field(default_factory=list)
    error: str = ""


@dataclass
@appendable
class EvidenceRecord(IdlStruct, typename="sustainml_v1::EvidenceRecord"):
    task_id: TaskId = field(default_factory=TaskId)
    task_type: str = ""
    received_unix_s: float = 0.0
    measurement: Measurement = field(default_factory=Measurement)


@dataclass
@appendable
class OptionNote(IdlStruct, typename="sustainml_v1::OptionNote"):
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
@appendable
class EvidenceRequest(IdlStruct, typename="sustainml_v1::EvidenceRequest"):
    request_id: str = ""
    task_type: str = ""
    device: str = ""
    model: str = ""
    host: str = ""
    problem_id: str = ""
    iteration: types.uint32 = 0
    limit: types.uint32 = 0


@dataclass
@appendable
class EvidenceReply(IdlStruct, typename="sustainml_v1::EvidenceReply"):
    request_id: str = ""
    records: Annotated[list[EvidenceRecord], types.sequence(EvidenceRecord)] = field(default_factory=list)
    notes: Annotated[list[OptionNote], types.sequence(OptionNote)] = field(default_factory=list)
    error: str = ""


@dataclass
@appendable
class NoteRequest(IdlStruct, typename="sustainml_v1::NoteRequest"):
    request_id: str = ""
    note: OptionNote = field(default_factory=OptionNote)


@dataclass
@appendable
class NoteReply(IdlStruct, typename="sustainml_v1::NoteReply"):
    request_id: str = ""
    accepted: bool = False
    note: OptionNote = field(default_factory=OptionNote)
    error: str = ""
