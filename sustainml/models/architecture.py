"""Build a model from what builds it (an ``Architecture``: its builder and reference data shape), with
synthetic data of the shape its published figures refer to. Knows nothing of the catalogue: the
catalogue validates its entries by building them here, and ``zoo`` builds a catalogue model by name.

The hardware node measures what it is given, so the very architectures whose quality the catalogue
quotes must be built the same everywhere. A builder (``builders``) is one of the zoo's own functions
below (torchvision's ImageNet models, the tabular models of Gorishniy et al. 2021, DLinear, all written
with ``torch.nn``), a transformers model class built from its config (never ``from_pretrained``: no
weights are fetched), or a scikit-learn estimator. Data is synthetic and seeded: measurements need the
right shapes and dtypes, not real images or text.

Typical use::

    arch = Architecture("my_mlp", TABULAR_REGRESSION, (8,), 1, builder)   # builder: a BuilderSpec
    workload = build_architecture(arch)      # a torch model: module, inputs, targets, loss
    loss = workload.loss(workload.module(workload.inputs(2)), workload.targets(2))
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from sustainml.exceptions import InvalidProblem

from .builders import SKLEARN, ZOO, BuilderSpec, sklearn_class, transformers_class, transformers_config_class
from .errors import LibraryMismatch
from .forecasting_models import DLinear
from .image_models import BasicBlock, Bottleneck, MobileNetV2, ResNet, SqueezeNet11
from .tabular_models import (
    FTTransformer,
    FTTransformerConfig,
    TabularMLP,
    TabularMLPConfig,
    TabularResNet,
    TabularResNetConfig,
)
from .tasks import (
    IMAGE_CLASSIFICATION,
    INPUT_RANK,
    INPUT_SHAPE_FORM,
    OBJECT_DETECTION,
    TABULAR_CLASSIFICATION,
    TABULAR_REGRESSION,
    TEXT_CLASSIFICATION,
    TEXT_GENERATION,
    TIME_SERIES_FORECASTING,
    TOKEN_INPUT_TASKS,
)
from .transformer_tasks import DEFAULT_NEW_TOKENS, TokenModel, wrap
from .workload import EstimatorWorkload, Workload

if TYPE_CHECKING:
    from transformers import PreTrainedModel

__all__ = [
    "Architecture",
    "ZooFunction",
    "ZOO_FUNCTIONS",
    "build_architecture",
    "build_estimator_architecture",
    "default_num_outputs",
    "example_input",
]

IMAGENET_INPUT_SHAPE = (3, 224, 224)
IMAGENET_CLASSES = 1000
CALIFORNIA_HOUSING_INPUT_SHAPE = (8,)  # eight numeric features
REGRESSION_OUTPUTS = 1
BINARY_CLASSES = 2
ETTH1_INPUT_SHAPE = (336, 7)  # look-back window, channels
ETTH1_HORIZON = 96

# Fixed seeds: the same call shape always yields the same weights, inputs and targets, so repeated
# measurements of a model run the same kernels on the same numbers.
WEIGHTS_SEED = 0
INPUTS_SEED = 1
TARGETS_SEED = 2


# ------------------------------------------------------------------------------------------ zoo functions


def _image_channels(name: str, input_shape: tuple[int, ...]) -> int:
    if len(input_shape) != 3 or min(input_shape) < 1:
        raise InvalidProblem(
            f"{name} takes images of shape [channels, height, width], e.g. {list(IMAGENET_INPUT_SHAPE)}; "
            f"got {list(input_shape)}"
        )
    return input_shape[0]


def _tabular_features(name: str, input_shape: tuple[int, ...]) -> int:
    if len(input_shape) != 1 or input_shape[0] < 1:
        raise InvalidProblem(
            f"{name} takes rows of numeric features, shape [num_features], e.g. "
            f"{list(CALIFORNIA_HOUSING_INPUT_SHAPE)}; got {list(input_shape)}"
        )
    return input_shape[0]


def resnet18(
    *, num_outputs: int = IMAGENET_CLASSES, input_shape: tuple[int, ...] = IMAGENET_INPUT_SHAPE
) -> nn.Module:
    """torchvision's ResNet-18: 11,689,512 parameters for 1000 classes."""
    in_channels = _image_channels("resnet18", input_shape)
    return ResNet(BasicBlock, (2, 2, 2, 2), num_classes=num_outputs, in_channels=in_channels)


def resnet50(
    *, num_outputs: int = IMAGENET_CLASSES, input_shape: tuple[int, ...] = IMAGENET_INPUT_SHAPE
) -> nn.Module:
    """torchvision's ResNet-50 (v1.5): 25,557,032 parameters for 1000 classes."""
    in_channels = _image_channels("resnet50", input_shape)
    return ResNet(Bottleneck, (3, 4, 6, 3), num_classes=num_outputs, in_channels=in_channels)


def mobilenet_v2(
    *, num_outputs: int = IMAGENET_CLASSES, input_shape: tuple[int, ...] = IMAGENET_INPUT_SHAPE
) -> nn.Module:
    """torchvision's MobileNetV2 at width 1.0: 3,504,872 parameters for 1000 classes."""
    return MobileNetV2(num_classes=num_outputs, in_channels=_image_channels("mobilenet_v2", input_shape))


def squeezenet1_1(
    *, num_outputs: int = IMAGENET_CLASSES, input_shape: tuple[int, ...] = IMAGENET_INPUT_SHAPE
) -> nn.Module:
    """torchvision's SqueezeNet 1.1: 1,235,496 parameters for 1000 classes."""
    return SqueezeNet11(num_classes=num_outputs, in_channels=_image_channels("squeezenet1_1", input_shape))


def tabular_mlp(
    *,
    num_outputs: int = REGRESSION_OUTPUTS,
    input_shape: tuple[int, ...] = CALIFORNIA_HOUSING_INPUT_SHAPE,
    config: TabularMLPConfig = TabularMLPConfig(),
) -> nn.Module:
    """Gorishniy et al.'s MLP; tuned for California Housing by default: 94,045 parameters for 8 features."""
    features = _tabular_features("tabular_mlp", input_shape)
    return TabularMLP(n_features=features, num_outputs=num_outputs, config=config)


def tabular_resnet(
    *,
    num_outputs: int = REGRESSION_OUTPUTS,
    input_shape: tuple[int, ...] = CALIFORNIA_HOUSING_INPUT_SHAPE,
    config: TabularResNetConfig = TabularResNetConfig(),
) -> nn.Module:
    """Gorishniy et al.'s ResNet; tuned for California Housing by default: 233,429 parameters for 8 features."""
    features = _tabular_features("tabular_resnet", input_shape)
    return TabularResNet(n_features=features, num_outputs=num_outputs, config=config)


def ft_transformer(
    *,
    num_outputs: int = REGRESSION_OUTPUTS,
    input_shape: tuple[int, ...] = CALIFORNIA_HOUSING_INPUT_SHAPE,
    config: FTTransformerConfig = FTTransformerConfig(),
) -> nn.Module:
    """Gorishniy et al.'s FT-Transformer; tuned for California Housing by default: 2,463,247 parameters."""
    features = _tabular_features("ft_transformer", input_shape)
    return FTTransformer(n_features=features, num_outputs=num_outputs, config=config)


def dlinear(
    *,
    num_outputs: int = ETTH1_HORIZON,
    input_shape: tuple[int, ...] = ETTH1_INPUT_SHAPE,
    kernel_size: int = 25,
    individual: bool = False,
) -> nn.Module:
    """DLinear (Zeng et al. 2023): ``num_outputs`` is the horizon; 64,704 parameters for 336 → 96 steps."""
    context_length, channels = input_shape
    return DLinear(
        context_length=context_length, horizon=num_outputs, channels=channels,
        kernel_size=kernel_size, individual=individual,
    )


@dataclass(frozen=True)
class ZooFunction:
    """One of the zoo's own builders: what tasks it serves, the ``params`` it accepts and how it builds.

    ``build(params, input_shape, num_outputs)`` returns the module; ``default_num_outputs`` is for
    ``task_types[0]`` (classes, regression targets or forecast horizon).
    """

    name: str
    task_types: tuple[str, ...]
    settings: tuple[str, ...]
    default_num_outputs: int
    build: Callable[[Mapping[str, Any], tuple[int, ...], int], nn.Module]


def _plain(function: Callable[..., nn.Module]) -> Callable[[Mapping[str, Any], tuple[int, ...], int], nn.Module]:
    return lambda _params, shape, outputs: function(num_outputs=outputs, input_shape=shape)


def _configured(function: Callable[..., nn.Module],
                config_class: type) -> Callable[[Mapping[str, Any], tuple[int, ...], int], nn.Module]:
    def build(params: Mapping[str, Any], shape: tuple[int, ...], outputs: int) -> nn.Module:
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in params.items()}
        return function(num_outputs=outputs, input_shape=shape, config=config_class(**values))

    return build


def _fields(config_class: type) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(config_class))


_TABULAR = (TABULAR_REGRESSION, TABULAR_CLASSIFICATION)

ZOO_FUNCTIONS: dict[str, ZooFunction] = {
    f.name: f
    for f in (
        ZooFunction("resnet18", (IMAGE_CLASSIFICATION,), (), IMAGENET_CLASSES, _plain(resnet18)),
        ZooFunction("resnet50", (IMAGE_CLASSIFICATION,), (), IMAGENET_CLASSES, _plain(resnet50)),
        ZooFunction("mobilenet_v2", (IMAGE_CLASSIFICATION,), (), IMAGENET_CLASSES, _plain(mobilenet_v2)),
        ZooFunction("squeezenet1_1", (IMAGE_CLASSIFICATION,), (), IMAGENET_CLASSES, _plain(squeezenet1_1)),
        ZooFunction("tabular_mlp", _TABULAR, _fields(TabularMLPConfig), REGRESSION_OUTPUTS,
                    _configured(tabular_mlp, TabularMLPConfig)),
        ZooFunction("tabular_resnet", _TABULAR, _fields(TabularResNetConfig), REGRESSION_OUTPUTS,
                    _configured(tabular_resnet, TabularResNetConfig)),
        ZooFunction("ft_transformer", _TABULAR, _fields(FTTransformerConfig), REGRESSION_OUTPUTS,
                    _configured(ft_transformer, FTTransformerConfig)),
        ZooFunction("dlinear", (TIME_SERIES_FORECASTING,), ("kernel_size", "individual"), ETTH1_HORIZON,
                    lambda params, shape, outputs: dlinear(num_outputs=outputs, input_shape=shape, **params)),
    )
}
"""The zoo's own builders, by the name a catalogue entry gives as ``builder: {kind: zoo, name: ...}``."""


# ------------------------------------------------------------------------------------------ architectures


@dataclass(frozen=True)
class Architecture:
    """What the zoo knows about a catalogue name: what builds it, what it learns, its reference data shape.

    ``default_num_outputs`` is the reference task's number of classes, regression targets or forecast
    steps; 0 where the task has none (text generation, whose output is the vocabulary).
    """

    name: str
    task_type: str
    default_input_shape: tuple[int, ...]
    default_num_outputs: int
    builder: BuilderSpec

    @property
    def library(self) -> str:
        """What runs it: "torch" (``build``) or "sklearn" (``build_estimator``)."""
        return self.builder.library

    @property
    def input_dtype(self) -> torch.dtype:
        """int64 for models that take token ids, else float32 (images, features, series)."""
        return torch.int64 if self.task_type in TOKEN_INPUT_TASKS else torch.float32


def _transformers_config(spec: BuilderSpec, task_type: str) -> tuple[type[PreTrainedModel], Any]:
    """The model class and its config (Any: each config class has its own attributes)."""
    cls = transformers_class(spec.name, task_type)
    return cls, transformers_config_class(cls)(**spec.settings_dict())


def default_num_outputs(spec: BuilderSpec, task_type: str) -> int:
    """Classes, targets or horizon that ``spec`` builds when nobody says otherwise."""
    if spec.kind == ZOO:
        function = ZOO_FUNCTIONS[spec.name]
        return BINARY_CLASSES if task_type == TABULAR_CLASSIFICATION else function.default_num_outputs
    if spec.kind == SKLEARN:
        return BINARY_CLASSES if task_type == TABULAR_CLASSIFICATION else REGRESSION_OUTPUTS
    _, config = _transformers_config(spec, task_type)
    if task_type == TIME_SERIES_FORECASTING:
        return int(config.prediction_length)
    if task_type == TEXT_GENERATION:
        return 0
    return int(config.num_labels)


# ------------------------------------------------------------------------------------------ data


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _device_of(module: nn.Module) -> torch.device:
    tensor = next(iter([*module.parameters(), *module.buffers()]), None)
    return tensor.device if tensor is not None else torch.device("cpu")


def example_input(
    module: nn.Module,
    input_shape: tuple[int, ...],
    batch: int = 1,
    *,
    device: torch.device | str | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """A batch ``module`` accepts: token ids (int64) for a token model, else real numbers (float32).

    On the meta device (FLOP counting, profiling) nothing is allocated; elsewhere values are drawn
    from ``generator`` on the CPU and moved. ``device`` defaults to where the module's weights are.
    """
    device = torch.device(device) if device is not None else _device_of(module)
    shape = (batch, *input_shape)
    if isinstance(module, TokenModel):
        if device.type == "meta":
            return torch.zeros(shape, dtype=torch.int64, device=device)
        return torch.randint(0, module.vocab_size, shape, generator=generator).to(device)
    if device.type == "meta":
        return torch.empty(shape, device=device)
    return torch.randn(shape, generator=generator).to(device)


def _check_shape(arch: Architecture, shape: tuple[int, ...]) -> None:
    if len(shape) != INPUT_RANK[arch.task_type] or min(shape, default=0) < 1:
        raise InvalidProblem(
            f"{arch.name} ({arch.task_type}) takes samples of shape {INPUT_SHAPE_FORM[arch.task_type]}; "
            f"got {list(shape)}"
        )


# ------------------------------------------------------------------------------------------ building


def _positions(config: Any) -> int | None:
    value = getattr(config, "max_position_embeddings", None)
    return int(value) if value else None


def _build_transformers(spec: BuilderSpec, task_type: str, shape: tuple[int, ...], outputs: int) -> nn.Module:
    cls, config = _transformers_config(spec, task_type)
    where = f"{spec.describe()}"
    if task_type in (TEXT_CLASSIFICATION, OBJECT_DETECTION):
        config.num_labels = outputs
    if task_type in (TEXT_CLASSIFICATION, TEXT_GENERATION):
        needed = shape[0] + (DEFAULT_NEW_TOKENS if task_type == TEXT_GENERATION else 0)
        limit = _positions(config)
        if limit is not None and needed > limit:
            what = f"{shape[0]} prompt + {DEFAULT_NEW_TOKENS} generated" if task_type == TEXT_GENERATION else f"{needed}"
            raise InvalidProblem(f"{where} takes at most {limit} tokens; {what} tokens were asked for. "
                                 f"Use a shorter input_shape.")
    if task_type == OBJECT_DETECTION and shape[0] != getattr(config, "num_channels", 3):
        if not hasattr(config, "num_channels"):
            raise InvalidProblem(f"{where} takes 3-channel images; got {shape[0]} channels")
        config.num_channels = shape[0]
    if task_type == TIME_SERIES_FORECASTING:
        config.context_length, config.num_input_channels = shape
        config.prediction_length = outputs
    return wrap(task_type, cls(config))


def _build_module(arch: Architecture, shape: tuple[int, ...], outputs: int) -> nn.Module:
    spec = arch.builder
    if spec.kind == ZOO:
        return ZOO_FUNCTIONS[spec.name].build(spec.settings_dict(), shape, outputs)
    return _build_transformers(spec, arch.task_type, shape, outputs)


def _detection_output_shape(arch: Architecture, shape: tuple[int, ...], outputs: int) -> tuple[int, int]:
    """(queries, classes + 4) of a detector's output, from a forward pass on the meta device."""
    with torch.device("meta"):
        probe = _build_module(arch, shape, outputs).eval()
        with torch.no_grad():
            out = probe(example_input(probe, shape, device="meta"))
    return int(out.shape[1]), int(out.shape[2])


def _detection_loss(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Surrogate of the DETR-family loss: class cross-entropy plus L1 on the boxes, without the matching.

    The Hungarian matching (a small assignment problem per image, on the CPU) and the GIoU term are
    left out: next to the backbone and the transformer they cost little, and the gradient flows
    through the same layers.
    """
    logits, boxes = outputs[..., :-4], outputs[..., -4:]
    target_classes, target_boxes = targets[..., :-4], targets[..., -4:]
    classes = F.cross_entropy(logits.flatten(0, 1).float(), target_classes.flatten(0, 1).float())
    return classes + F.l1_loss(boxes.float(), target_boxes.float())


def _next_token_loss(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of each position's logits against the next token."""
    return F.cross_entropy(logits[:, :-1].flatten(0, 1), tokens[:, 1:].flatten())


def build_architecture(
    arch: Architecture, *, num_outputs: int | None = None, input_shape: tuple[int, ...] | None = None
) -> Workload:
    """Build a torch ``arch`` with seeded weights, plus seeded synthetic inputs, targets and its loss.

    ``num_outputs`` defaults to the reference task's (1000 ImageNet classes, 2 SST-2 labels, 1
    regression target, 96 forecast steps) and ``input_shape`` (per sample) to the one its published
    figures refer to. The module is on the CPU in training mode; inputs and targets are CPU tensors
    for the caller to move. Built under ``torch.device("meta")`` the module holds no memory, which is
    how FLOPs are counted.

    Targets and losses per task: class indices and cross-entropy (classification); float targets
    ``[n, outputs]`` and mean squared error (regression); ``[n, horizon, channels]`` and MSE
    (forecasting); the prompt itself and next-token cross-entropy (text generation); one-hot classes
    and boxes with the surrogate detection loss (object detection, see ``_detection_loss``).
    Raises ``LibraryMismatch`` for a scikit-learn model (``build_estimator_architecture`` builds those).
    """
    if arch.library != "torch":
        raise LibraryMismatch(arch.name, arch.library, "build_estimator")
    shape = tuple(int(d) for d in (arch.default_input_shape if input_shape is None else input_shape))
    _check_shape(arch, shape)
    outputs = arch.default_num_outputs if num_outputs is None else int(num_outputs)
    if outputs < 1 and arch.task_type != TEXT_GENERATION:
        raise InvalidProblem(
            f"{arch.name} needs num_outputs >= 1 (classes, regression targets or forecast steps); got {outputs}"
        )

    with torch.random.fork_rng(devices=[]):  # seeded weights without disturbing the caller's RNG
        torch.manual_seed(WEIGHTS_SEED)
        module = _build_module(arch, shape, outputs)

    def inputs(n: int) -> torch.Tensor:
        return example_input(module, shape, n, device="cpu", generator=_generator(INPUTS_SEED))

    task = arch.task_type
    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    if task in (IMAGE_CLASSIFICATION, TEXT_CLASSIFICATION, TABULAR_CLASSIFICATION):

        def targets(n: int) -> torch.Tensor:
            return torch.randint(0, outputs, (n,), generator=_generator(TARGETS_SEED))

        loss = F.cross_entropy
    elif task == TEXT_GENERATION:
        targets = inputs  # the prompt is its own target: each position predicts the next token
        loss = _next_token_loss
    elif task == OBJECT_DETECTION:
        queries, width = _detection_output_shape(arch, shape, outputs)

        def targets(n: int) -> torch.Tensor:
            generator = _generator(TARGETS_SEED)
            classes = torch.randint(0, width - 4, (n, queries), generator=generator)
            boxes = torch.rand((n, queries, 4), generator=generator) * 0.9 + 0.05
            return torch.cat([F.one_hot(classes, width - 4).float(), boxes], dim=-1)

        loss = _detection_loss
    elif task == TIME_SERIES_FORECASTING:

        def targets(n: int) -> torch.Tensor:
            return torch.randn((n, outputs, shape[1]), generator=_generator(TARGETS_SEED))

        loss = F.mse_loss
    else:

        def targets(n: int) -> torch.Tensor:
            return torch.randn((n, outputs), generator=_generator(TARGETS_SEED))

        loss = F.mse_loss

    return Workload(name=arch.name, module=module, inputs=inputs, targets=targets, loss=loss)


def build_estimator_architecture(
    arch: Architecture, *, input_shape: tuple[int, ...] | None = None, num_outputs: int | None = None
) -> EstimatorWorkload:
    """Build the scikit-learn ``arch``, unfitted and seeded, with seeded synthetic data of its shape.

    ``data(n)`` gives ``X`` float32 ``[n, features]`` and ``y``: class indices below ``num_outputs``
    (default 2) for classification, float32 targets for regression. Raises ``LibraryMismatch`` for
    a torch model (``build_architecture`` builds those).
    """
    name = arch.name
    if arch.library != SKLEARN:
        raise LibraryMismatch(arch.name, arch.library, "build")
    shape = tuple(int(d) for d in (arch.default_input_shape if input_shape is None else input_shape))
    _check_shape(arch, shape)
    classes = arch.default_num_outputs if num_outputs is None else int(num_outputs)
    classify = arch.task_type == TABULAR_CLASSIFICATION
    if classify and classes < 2:
        raise InvalidProblem(f"{name} is a classifier and needs num_outputs >= 2 classes; got {classes}")

    cls = sklearn_class(arch.builder.name, arch.task_type)
    params = arch.builder.settings_dict()
    if "random_state" in cls().get_params() and "random_state" not in params:
        params["random_state"] = WEIGHTS_SEED
    estimator = cls(**params)

    def data(n: int) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng(INPUTS_SEED)
        X = rng.standard_normal((n, *shape), dtype=np.float32)
        y: np.ndarray
        if classify:
            y = np.arange(n) % classes  # every class present, whatever n
            rng.shuffle(y)
        else:
            y = rng.standard_normal(n, dtype=np.float32)
        return X, y

    return EstimatorWorkload(name=name, estimator=estimator, data=data)
