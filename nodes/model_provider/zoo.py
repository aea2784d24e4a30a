"""Build any catalogue model by name, with synthetic data of the shape its published figures refer to.

The hardware node measures what it is given, so the zoo must hand it the very architectures whose
accuracy the catalogue quotes: torchvision's ImageNet models and the tabular models of Gorishniy et
al. 2021, all written here with ``torch.nn`` (see ``image_models`` and ``tabular_models``). Data is
synthetic and seeded: measurements need the right shapes, not real images.

Typical use::

    workload = build("resnet18")
    loss = workload.loss(workload.module(workload.inputs(2)), workload.targets(2))
"""

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from sustainml.exceptions import InvalidProblem

from .errors import UnknownModel
from .image_models import BasicBlock, Bottleneck, MobileNetV2, ResNet, SqueezeNet11
from .tabular_models import FTTransformer, TabularMLP, TabularResNet
from .workload import Workload

__all__ = [
    "IMAGE_CLASSIFICATION",
    "TABULAR_REGRESSION",
    "Architecture",
    "architecture",
    "build",
    "known_models",
    "resnet18",
    "resnet50",
    "mobilenet_v2",
    "squeezenet1_1",
    "tabular_mlp",
    "tabular_resnet",
    "ft_transformer",
]

IMAGE_CLASSIFICATION = "image_classification"
TABULAR_REGRESSION = "tabular_regression"

IMAGENET_INPUT_SHAPE = (3, 224, 224)
IMAGENET_CLASSES = 1000
CALIFORNIA_HOUSING_INPUT_SHAPE = (8,)  # eight numeric features
REGRESSION_OUTPUTS = 1

# Fixed seeds: the same call shape always yields the same weights, inputs and targets, so repeated
# measurements of a model run the same kernels on the same numbers.
WEIGHTS_SEED = 0
INPUTS_SEED = 1
TARGETS_SEED = 2


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
    *, num_outputs: int = REGRESSION_OUTPUTS, input_shape: tuple[int, ...] = CALIFORNIA_HOUSING_INPUT_SHAPE
) -> nn.Module:
    """Gorishniy et al.'s MLP tuned for California Housing: 94,045 parameters for 8 features."""
    return TabularMLP(n_features=_tabular_features("tabular_mlp", input_shape), num_outputs=num_outputs)


def tabular_resnet(
    *, num_outputs: int = REGRESSION_OUTPUTS, input_shape: tuple[int, ...] = CALIFORNIA_HOUSING_INPUT_SHAPE
) -> nn.Module:
    """Gorishniy et al.'s ResNet tuned for California Housing: 233,429 parameters for 8 features."""
    return TabularResNet(n_features=_tabular_features("tabular_resnet", input_shape), num_outputs=num_outputs)


def ft_transformer(
    *, num_outputs: int = REGRESSION_OUTPUTS, input_shape: tuple[int, ...] = CALIFORNIA_HOUSING_INPUT_SHAPE
) -> nn.Module:
    """Gorishniy et al.'s FT-Transformer tuned for California Housing: 2,463,247 parameters for 8 features."""
    return FTTransformer(n_features=_tabular_features("ft_transformer", input_shape), num_outputs=num_outputs)


@dataclass(frozen=True)
class Architecture:
    """What the zoo knows about a name: how to build it, what it learns, and its reference data shape."""

    name: str
    task_type: str
    default_input_shape: tuple[int, ...]
    default_num_outputs: int
    builder: Callable[..., nn.Module]


_IMAGENET = (IMAGE_CLASSIFICATION, IMAGENET_INPUT_SHAPE, IMAGENET_CLASSES)
_CALIFORNIA_HOUSING = (TABULAR_REGRESSION, CALIFORNIA_HOUSING_INPUT_SHAPE, REGRESSION_OUTPUTS)

_ARCHITECTURES: dict[str, Architecture] = {
    a.name: a
    for a in (
        Architecture("resnet18", *_IMAGENET, resnet18),
        Architecture("resnet50", *_IMAGENET, resnet50),
        Architecture("mobilenet_v2", *_IMAGENET, mobilenet_v2),
        Architecture("squeezenet1_1", *_IMAGENET, squeezenet1_1),
        Architecture("tabular_mlp", *_CALIFORNIA_HOUSING, tabular_mlp),
        Architecture("tabular_resnet", *_CALIFORNIA_HOUSING, tabular_resnet),
        Architecture("ft_transformer", *_CALIFORNIA_HOUSING, ft_transformer),
    )
}


def known_models() -> list[str]:
    """The names ``build`` accepts, in catalogue order."""
    return list(_ARCHITECTURES)


def architecture(name: str) -> Architecture:
    """The zoo's description of ``name``; raises ``UnknownModel`` listing the known names."""
    try:
        return _ARCHITECTURES[name]
    except KeyError:
        raise UnknownModel(name, known_models(), where="the model zoo") from None


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def build(name: str, *, num_outputs: int | None = None, input_shape: tuple[int, ...] | None = None) -> Workload:
    """Build ``name`` with seeded weights, plus seeded synthetic inputs, targets and its training loss.

    ``num_outputs`` defaults to the reference task's (1000 ImageNet classes, 1 regression target)
    and ``input_shape`` (per sample) to the one its published figures refer to. The module is on
    the CPU in training mode; inputs and targets are CPU tensors for the caller to move. Built
    under ``torch.device("meta")`` the module holds no memory, which is how FLOPs are counted.
    Classification targets are class indices for cross-entropy; regression targets are floats of
    shape ``[n, num_outputs]`` for mean squared error.
    """
    arch = architecture(name)
    shape = tuple(int(d) for d in (arch.default_input_shape if input_shape is None else input_shape))
    outputs = arch.default_num_outputs if num_outputs is None else int(num_outputs)
    if outputs < 1:
        raise InvalidProblem(f"{name} needs num_outputs >= 1 (classes, or regression targets); got {outputs}")

    with torch.random.fork_rng(devices=[]):  # seeded weights without disturbing the caller's RNG
        torch.manual_seed(WEIGHTS_SEED)
        module = arch.builder(num_outputs=outputs, input_shape=shape)

    def inputs(n: int) -> torch.Tensor:
        return torch.randn((n, *shape), generator=_generator(INPUTS_SEED))

    if arch.task_type == IMAGE_CLASSIFICATION:

        def targets(n: int) -> torch.Tensor:
            return torch.randint(0, outputs, (n,), generator=_generator(TARGETS_SEED))

        loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = F.cross_entropy
    else:

        def targets(n: int) -> torch.Tensor:
            return torch.randn((n, outputs), generator=_generator(TARGETS_SEED))

        loss = F.mse_loss

    return Workload(name=name, module=module, inputs=inputs, targets=targets, loss=loss)
