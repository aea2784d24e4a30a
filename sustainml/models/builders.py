"""How a catalogue entry says what builds its model: the builder as data, and the whitelist it must pass.

A catalogue entry names its builder instead of pointing at code, so that a user can add a model with
a YAML file alone::

    builder: {kind: zoo, name: resnet18}
    builder: {kind: zoo, name: tabular_mlp, params: {d_layers: [256, 128], dropout: 0.1}}
    builder: {kind: transformers, class: BertForSequenceClassification, config: {num_hidden_layers: 6}}
    builder: {kind: sklearn, class: RandomForestRegressor, params: {n_estimators: 50}}

Only three kinds of class can be named, each looked up by its bare name in one place, never imported
from a dotted path written in a data file: the zoo's own builder functions (``zoo_functions``), model
classes of ``transformers`` whose name ends as the task needs (``...ForSequenceClassification`` for
text classification, for instance), and the estimators ``sklearn.utils.all_estimators`` lists as
classifiers or regressors. Settings are checked against what the class accepts, with the close
matches of a misspelt key in the error; a transformers config that would download weights is refused.
"""

from __future__ import annotations

import difflib
import functools
import inspect
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .tasks import (
    OBJECT_DETECTION,
    TABULAR_CLASSIFICATION,
    TABULAR_REGRESSION,
    TEXT_CLASSIFICATION,
    TEXT_GENERATION,
    TIME_SERIES_FORECASTING,
)

if TYPE_CHECKING:
    from transformers import PretrainedConfig, PreTrainedModel  # imported where used at run time: a heavy import

__all__ = [
    "BUILDER_KINDS",
    "TRANSFORMERS_CLASS_SUFFIXES",
    "SKLEARN_ESTIMATOR_TYPES",
    "BuilderSpec",
    "parse_builder",
    "transformers_class",
    "transformers_config_class",
    "sklearn_class",
]

ZOO, TRANSFORMERS, SKLEARN = "zoo", "transformers", "sklearn"
BUILDER_KINDS = (ZOO, TRANSFORMERS, SKLEARN)

#: What a transformers model class must be called for each task, so that the zoo knows how to feed it
#: and read its output (see ``transformer_tasks``).
TRANSFORMERS_CLASS_SUFFIXES: dict[str, tuple[str, ...]] = {
    TEXT_CLASSIFICATION: ("ForSequenceClassification",),
    TEXT_GENERATION: ("ForCausalLM", "LMHeadModel"),
    OBJECT_DETECTION: ("ForObjectDetection",),
    TIME_SERIES_FORECASTING: ("ForPrediction",),
}

#: The scikit-learn estimator type each task takes, as ``all_estimators(type_filter=...)`` names it.
SKLEARN_ESTIMATOR_TYPES: dict[str, str] = {
    TABULAR_CLASSIFICATION: "classifier",
    TABULAR_REGRESSION: "regressor",
}

# Config keys every transformers config accepts although its ``to_dict()`` may not show them.
_COMMON_CONFIG_KEYS = {"num_labels", "attn_implementation", "id2label", "label2id"}

_IDENTIFIER = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")

@dataclass(frozen=True)
class _Frozen:
    """Marks a frozen mapping inside ``BuilderSpec.settings`` so that thawing tells it from a list."""

    pairs: tuple[tuple[str, Any], ...]


def _freeze(value: Any) -> Any:
    """A YAML value made hashable: lists become tuples, mappings ``_Frozen`` pairs."""
    if isinstance(value, Mapping):
        return _Frozen(tuple((str(k), _freeze(v)) for k, v in value.items()))
    if isinstance(value, list):
        return tuple(_freeze(v) for v in value)
    return value


def _thaw(value: Any) -> Any:
    if isinstance(value, _Frozen):
        return {k: _thaw(v) for k, v in value.pairs}
    if isinstance(value, tuple):
        return [_thaw(v) for v in value]
    return value


@dataclass(frozen=True)
class BuilderSpec:
    """What builds a model, validated: a zoo function, a transformers class or a scikit-learn estimator.

    ``settings`` are the transformers config (``kind == "transformers"``) or the parameters of a
    zoo function or estimator; ``settings_dict()`` gives them back as plain YAML-like values.
    """

    kind: str
    name: str
    settings: _Frozen = _Frozen(())

    @property
    def library(self) -> str:
        """What runs the model: "torch" (zoo and transformers) or "sklearn"."""
        return SKLEARN if self.kind == SKLEARN else "torch"

    def settings_dict(self) -> dict[str, Any]:
        return _thaw(self.settings)

    def describe(self) -> str:
        """``transformers BertForSequenceClassification``, ``zoo resnet18``: for messages."""
        return f"{self.kind} {self.name}"


# ------------------------------------------------------------------------------------------- whitelist


def _close(name: str, known: list[str]) -> str:
    matches = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
    return f"; did you mean {', '.join(matches)}?" if matches else ""


def transformers_class(name: str, task_type: str) -> type[PreTrainedModel]:
    """The transformers model class called ``name``, if it may build ``task_type``; ValueError otherwise."""
    suffixes = TRANSFORMERS_CLASS_SUFFIXES.get(task_type)
    if suffixes is None:
        supported = ", ".join(TRANSFORMERS_CLASS_SUFFIXES)
        raise ValueError(f"transformers builders serve {supported}, not {task_type}; use a zoo or sklearn builder")
    import transformers

    if not _IDENTIFIER.match(name) or not name.endswith(suffixes):
        raise ValueError(
            f"a transformers model class for {task_type}, named ...{' or ...'.join(suffixes)}, "
            f"e.g. Bert{suffixes[0]}; got {name!r}"
        )
    try:
        cls = getattr(transformers, name)
    except (AttributeError, ImportError, RuntimeError):
        cls = None
    if not (isinstance(cls, type) and issubclass(cls, transformers.PreTrainedModel)):
        known = [n for n in dir(transformers) if n.endswith(suffixes)]
        raise ValueError(f"a transformers model class for {task_type}; transformers has no {name!r}{_close(name, known)}")
    return cls


@functools.lru_cache(maxsize=None)
def _sklearn_estimators(estimator_type: str) -> dict[str, type]:
    from sklearn.utils import all_estimators

    return dict(all_estimators(type_filter=estimator_type))


def sklearn_class(name: str, task_type: str) -> type:
    """The scikit-learn estimator class called ``name``, if it suits ``task_type``; ValueError otherwise."""
    estimator_type = SKLEARN_ESTIMATOR_TYPES.get(task_type)
    if estimator_type is None:
        supported = ", ".join(SKLEARN_ESTIMATOR_TYPES)
        raise ValueError(f"scikit-learn builders serve {supported}, not {task_type}")
    known = _sklearn_estimators(estimator_type)
    if name not in known:
        raise ValueError(f"a scikit-learn {estimator_type} class, e.g. RandomForest{estimator_type.capitalize()}; "
                         f"got {name!r}{_close(name, sorted(known))}")
    return known[name]


def transformers_config_class(cls: type[PreTrainedModel]) -> type[PretrainedConfig]:
    """The config class that ``cls`` is built from; ValueError for a model class without one."""
    if cls.config_class is None:
        raise ValueError(f"a transformers model class with a config class; {cls.__name__} has none")
    return cls.config_class


def _transformers_config_keys(config_class: type[PretrainedConfig]) -> set[str]:
    keys = set(config_class().to_dict()) | _COMMON_CONFIG_KEYS
    keys |= {p for p in inspect.signature(config_class.__init__).parameters if p not in ("self", "kwargs")}
    return keys


def _refuse_download_settings(config: Mapping[str, Any]) -> None:
    """Weights are never fetched: refuse, before anything is built, the settings that would fetch them."""
    for key in ("use_pretrained_backbone", "use_timm_backbone"):
        if config.get(key):
            raise ValueError(f"{key}: false (nothing is downloaded: models are built from their config with "
                             f"fresh weights); got {key}: true")
    if config.get("backbone") is not None or config.get("backbone_kwargs"):
        raise ValueError("a backbone_config mapping (e.g. {model_type: resnet, depths: [3, 4, 6, 3]}) instead of "
                         "backbone/backbone_kwargs: a backbone name is looked up on the model hub")


def _refuse_downloading_defaults(config_class: type[PretrainedConfig], config: dict[str, Any]) -> None:
    """Refuse a config whose defaults would fetch weights (a pretrained or a timm backbone)."""
    built = config_class(**config)
    for key in ("use_pretrained_backbone", "use_timm_backbone"):
        if getattr(built, key, False):
            raise ValueError(f"{key}: false, set explicitly: {config_class.__name__} defaults to true, which "
                             f"would download a backbone")
    backbone = getattr(built, "backbone_config", None)
    if backbone is not None and getattr(backbone, "model_type", "") == "timm_backbone":
        raise ValueError(f"a transformers backbone_config (e.g. {{model_type: resnet}}): {config_class.__name__} "
                         "defaults to a timm backbone, which needs timm and downloads its weights")


# ------------------------------------------------------------------------------------------- parsing

Fail = Callable[[str, str], Exception]
"""``fail(field, problem)``: the error to raise, naming the field (a catalogue's names file and entry too)."""


def _settings(raw: Mapping[str, Any], key: str, fail: Fail) -> dict[str, Any]:
    value = raw.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise fail(f"builder.{key}", f"expected a mapping of setting names to values, got {value!r}")
    return value


def _check_keys(given: Mapping[str, Any], known: set[str], what: str, field: str, fail: Fail) -> None:
    for key in given:
        if key not in known:
            raise fail(f"{field}.{key}", f"not a setting of {what}{_close(str(key), sorted(known))}")


def parse_builder(
    raw: object, task_type: str, fail: Fail, zoo_functions: Mapping[str, Any]
) -> BuilderSpec:
    """Read and check an entry's ``builder`` mapping for ``task_type``.

    ``zoo_functions`` maps the zoo's builder names to objects with ``task_types`` and ``settings``
    (the keys their ``params`` accept). Raises what ``fail`` makes, naming the field at fault.
    """
    if not isinstance(raw, dict):
        raise fail("builder", "expected a mapping such as {kind: zoo, name: resnet18} or "
                              "{kind: transformers, class: BertForSequenceClassification, config: {...}}, "
                              f"got {raw!r}")
    kind = raw.get("kind")
    if kind not in BUILDER_KINDS:
        raise fail("builder.kind", f"expected one of {', '.join(BUILDER_KINDS)}, got {kind!r}")
    allowed = {ZOO: {"kind", "name", "params"}, TRANSFORMERS: {"kind", "class", "config"},
               SKLEARN: {"kind", "class", "params"}}[kind]
    for key in raw:
        if key not in allowed:
            raise fail(f"builder.{key}", f"not a field of a {kind} builder; it takes {', '.join(sorted(allowed))}")

    if kind == ZOO:
        name = raw.get("name")
        if not isinstance(name, str) or name not in zoo_functions:
            raise fail("builder.name", f"expected a zoo builder, one of {', '.join(zoo_functions)}; got {name!r}")
        function = zoo_functions[name]
        if task_type not in function.task_types:
            raise fail("builder.name", f"a zoo builder for {task_type}; {name} builds "
                                       f"{', '.join(function.task_types)}")
        params = _settings(raw, "params", fail)
        _check_keys(params, set(function.settings), f"zoo builder {name}", "builder.params", fail)
        return BuilderSpec(kind, name, _freeze(params))

    name = raw.get("class")
    if not isinstance(name, str):
        raise fail("builder.class", f"expected the class name as a string, got {name!r}")
    if kind == TRANSFORMERS:
        try:
            config_class = transformers_config_class(transformers_class(name, task_type))
        except ValueError as e:
            raise fail("builder.class", f"expected {e}") from None
        config = _settings(raw, "config", fail)
        try:
            _refuse_download_settings(config)
        except ValueError as e:
            raise fail("builder.config", f"expected {e}") from None
        _check_keys(config, _transformers_config_keys(config_class), config_class.__name__, "builder.config", fail)
        try:
            _refuse_downloading_defaults(config_class, config)
        except ValueError as e:
            raise fail("builder.config", f"expected {e}") from None
        except (TypeError, KeyError) as e:  # a config class that refuses a value's type
            raise fail("builder.config", f"expected values {config_class.__name__} accepts; it says: {e}") from None
        return BuilderSpec(kind, name, _freeze(config))

    try:
        estimator = sklearn_class(name, task_type)
    except ValueError as e:
        raise fail("builder.class", f"expected {e}") from None
    params = _settings(raw, "params", fail)
    _check_keys(params, set(estimator().get_params()), name, "builder.params", fail)
    for key, value in params.items():
        if isinstance(value, dict):
            raise fail(f"builder.params.{key}", f"expected a number, string, boolean or list, got {value!r}")
    return BuilderSpec(kind, name, _freeze(params))
