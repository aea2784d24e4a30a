"""A catalogue entry's builder travels in ModelCandidate.builder and reads back the same, through CDR too;
what cannot travel, or comes malformed, is refused naming the setting."""

from __future__ import annotations

import pytest

from sustainml import msg
from sustainml.models import builder_message as bm
from sustainml.models.builders import BuilderSpec
from sustainml.models.catalogue import default_catalogue, find, to_candidate
from sustainml.models.errors import InvalidBuilder

CATALOGUE = default_catalogue()


@pytest.mark.parametrize("entry", CATALOGUE, ids=lambda e: e.name)
def test_every_catalogue_builder_travels_and_reads_back_the_same(entry) -> None:
    candidate = to_candidate(entry, "test")
    wire = msg.ModelCandidate.deserialize(candidate.serialize())   # as a hardware node receives it
    assert (wire.builder.kind, wire.builder.name, wire.builder.num_outputs) == \
        (entry.builder.kind, entry.builder.name, entry.num_outputs)
    spec = bm.from_message(wire.builder, wire.task_type)
    assert spec == entry.builder
    assert spec.settings_dict() == entry.builder.settings_dict()
    assert bm.fingerprint(spec, entry.task_type, entry.num_outputs) == \
        bm.fingerprint(entry.builder, entry.task_type, entry.num_outputs)


def test_lists_and_scalars_are_typed_by_their_sequence() -> None:
    settings = {s.name: s for s in bm.to_settings(
        {"d_layers": [64, 32], "dropout": 0.1, "individual": False, "kind": "resnet", "empty": [],
         "mixed": [1, 2.5], "flags": [True, False], "names": ["a", "b"], "none": None, "big": 2**62})}
    assert (settings["d_layers"].is_list, list(settings["d_layers"].integers)) == (True, [64, 32])
    assert (settings["dropout"].is_list, list(settings["dropout"].numbers)) == (False, [0.1])
    assert (settings["individual"].is_list, list(settings["individual"].booleans)) == (False, [False])
    assert list(settings["kind"].strings) == ["resnet"] and not settings["kind"].is_list
    assert settings["empty"].is_list and not any(len(getattr(settings["empty"], n)) for n in
                                                 ("booleans", "integers", "numbers", "strings"))
    assert list(settings["mixed"].numbers) == [1.0, 2.5] and not settings["mixed"].integers
    assert list(settings["flags"].booleans) == [True, False] and not settings["flags"].integers
    assert not settings["none"].is_list and not settings["none"].numbers
    back = bm.from_settings(list(settings.values()))
    assert back == {"d_layers": [64, 32], "dropout": 0.1, "individual": False, "kind": "resnet", "empty": [],
                    "mixed": [1.0, 2.5], "flags": [True, False], "names": ["a", "b"], "none": None, "big": 2**62}
    assert type(back["dropout"]) is float and type(back["individual"]) is bool


def test_nested_mappings_travel_as_dotted_names() -> None:
    config = {"num_labels": 80, "backbone_config": {"model_type": "rt_detr_resnet", "depths": [2, 2],
                                                    "inner": {"width": 3}}}
    settings = bm.to_settings(config)
    assert [s.name for s in settings] == ["num_labels", "backbone_config.model_type", "backbone_config.depths",
                                          "backbone_config.inner.width"]
    assert bm.from_settings(settings) == config
    rtdetr = find(CATALOGUE, "rtdetr_r18")
    assert "backbone_config" in rtdetr.builder.settings_dict()   # the catalogue does nest: the case is real


@pytest.mark.parametrize("values, problem", [
    ({"grid": [[1, 2], [3, 4]]}, "a list of lists or of mappings"),
    ({"layers": [{"width": 2}]}, "a list of lists or of mappings"),
    ({"sub": {}}, "an empty mapping cannot travel"),
    ({"odd": [1, "a"]}, "a list of one of these"),
    ({"a.b": 1}, "identifier"),
    ({"huge": 2**70}, "does not fit an int64"),
])
def test_what_cannot_travel_is_refused_naming_the_setting(values: dict, problem: str) -> None:
    with pytest.raises(ValueError, match=problem) as raised:
        bm.to_settings(values)
    assert repr(next(iter(values))) in str(raised.value)


def setting(name: str, **values: object) -> msg.BuilderSetting:
    return msg.BuilderSetting(name=name, **values)


@pytest.mark.parametrize("settings, field, problem", [
    ([setting("dropout", integers=[1], numbers=[0.1])], "builder.settings.dropout", "integers and numbers both"),
    ([setting("dropout", numbers=[0.1, 0.2])], "builder.settings.dropout", "is_list is false, so one value"),
    ([setting("d_layers", is_list=True, integers=[1]), setting("d_layers", is_list=True, integers=[2])],
     "builder.settings.d_layers", "set twice"),
    ([setting("a", integers=[1]), setting("a.b", integers=[2])], "builder.settings.a.b", "a is set as a value"),
    ([setting("bad name", integers=[1])], "builder.settings.bad name", "identifier"),
])
def test_a_malformed_setting_is_refused_naming_it(settings: list, field: str, problem: str) -> None:
    with pytest.raises(InvalidBuilder, match=problem) as raised:
        bm.from_settings(settings)
    assert raised.value.field == field


@pytest.mark.parametrize("builder, task_type, field, problem", [
    (msg.ModelBuilder(kind="pickle", name="x"), "tabular_regression", "builder.kind", "one of zoo, transformers"),
    (msg.ModelBuilder(kind="zoo", name="os.system"), "tabular_regression", "builder.name", "expected a zoo builder"),
    (msg.ModelBuilder(kind="zoo", name="resnet18"), "tabular_regression", "builder.name", "builds image_classification"),
    (msg.ModelBuilder(kind="zoo", name="tabular_mlp", settings=[setting("d_layer", is_list=True, integers=[8])]),
     "tabular_regression", "builder.settings.d_layer", "did you mean d_layers"),
    (msg.ModelBuilder(kind="sklearn", name="GaussianProcessRegressorr"), "tabular_regression", "builder.name",
     "did you mean GaussianProcessRegressor"),
    (msg.ModelBuilder(kind="transformers", name="BertModel"), "text_classification", "builder.name",
     "ForSequenceClassification"),
    (msg.ModelBuilder(kind="transformers", name="BertForSequenceClassification",
                      settings=[setting("hiden_size", integers=[64])]),
     "text_classification", "builder.settings.hiden_size", "did you mean hidden_size"),
])
def test_a_builder_off_the_whitelist_is_refused_naming_the_field(
        builder: msg.ModelBuilder, task_type: str, field: str, problem: str) -> None:
    with pytest.raises(InvalidBuilder, match=problem) as raised:
        bm.from_message(builder, task_type)
    assert raised.value.field == field
    assert str(raised.value).startswith(f"field '{field}': ")


def test_the_fingerprint_tells_settings_apart_but_not_their_order() -> None:
    def spec(settings: list[msg.BuilderSetting]) -> BuilderSpec:
        return bm.from_message(msg.ModelBuilder(kind="zoo", name="tabular_mlp", settings=settings),
                               "tabular_regression")

    narrow = [setting("d_layers", is_list=True, integers=[64, 32]), setting("dropout", numbers=[0.1])]
    wide = [setting("d_layers", is_list=True, integers=[512, 256]), setting("dropout", numbers=[0.1])]
    a, b = bm.fingerprint(spec(narrow), "tabular_regression", 1), bm.fingerprint(spec(wide), "tabular_regression", 1)
    assert a != b and len(a) == 16
    assert bm.fingerprint(spec(narrow[::-1]), "tabular_regression", 1) == a
    assert bm.fingerprint(spec(narrow), "tabular_regression", 3) != a
    assert bm.fingerprint(spec(narrow), "tabular_classification", 1) != a
