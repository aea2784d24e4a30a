"""A user adds models with a YAML file, no code: a BERT of another size from its transformers config, a
random forest with other settings, an MLP of other widths. Builders are whitelisted and every mistake
is one line naming the file, the entry, the field, what was expected and what came."""

import textwrap
from pathlib import Path

import pytest
import torch
import yaml

from sustainml.msg import TaskConstraints, EncodedTask
from sustainml.models import zoo
from sustainml.models.catalogue import (
    DEFAULT_CATALOGUE_PATH,
    EXTRA_CATALOGUE_ENV,
    default_catalogue,
    find,
    load_catalogue,
)
from sustainml.models.errors import CatalogueError
from sustainml_nodes.model_provider.proposal import propose

USER_CATALOGUE = textwrap.dedent("""\
    models:
      - name: bert_mini
        display_name: BERT-Mini
        family: BERT
        size: mini (4 layers, hidden 256)
        task_type: text_classification
        modality: text
        builder:
          kind: transformers
          class: BertForSequenceClassification
          config: {hidden_size: 256, num_hidden_layers: 4, num_attention_heads: 4, intermediate_size: 1024}
        input_shape: [64]
        num_outputs: 3
        params: null
        published_gmacs: null
        quality: null
        licence: Apache-2.0
        default_epochs: 4
        default_batch_size: 32
      - name: small_forest
        display_name: Small random forest
        family: Random forest
        task_type: tabular_regression
        modality: tabular
        builder: {kind: sklearn, class: RandomForestRegressor, params: {n_estimators: 10, max_depth: 6}}
        input_shape: [8]
        params: null
        published_gmacs: null
        quality: null
        licence: BSD-3-Clause
        default_epochs: 1
      - name: narrow_mlp
        display_name: Narrow MLP
        family: MLP
        task_type: tabular_regression
        modality: tabular
        builder: {kind: zoo, name: tabular_mlp, params: {d_layers: [64, 32], dropout: 0.1}}
        input_shape: [8]
        params: null
        published_gmacs: null
        quality: null
        licence: MIT
        default_epochs: 50
        default_batch_size: 256
    """)


@pytest.fixture
def user_file(tmp_path: Path) -> Path:
    path = tmp_path / "my_models.yaml"
    path.write_text(USER_CATALOGUE)
    return path


def test_a_users_extra_file_adds_models_that_the_zoo_builds(user_file: Path):
    entries = load_catalogue(extra=[user_file])
    assert [e.name for e in entries[-3:]] == ["bert_mini", "small_forest", "narrow_mlp"]
    bert_mini = find(entries, "bert_mini")
    assert (bert_mini.library, bert_mini.num_outputs, bert_mini.params_published) == ("torch", 3, False)

    workload = zoo.build("bert_mini", entries=entries)
    assert sum(p.numel() for p in workload.module.parameters()) == bert_mini.params  # counted as built
    logits = workload.module(workload.inputs(2))
    assert logits.shape == (2, 3)
    workload.loss(logits, workload.targets(2)).backward()

    mlp = zoo.build("narrow_mlp", entries=entries).module
    assert [layer.out_features for layer in mlp.layers] == [64, 32]

    forest = zoo.build_estimator("small_forest", entries=entries)
    assert forest.estimator.get_params()["n_estimators"] == 10
    forest.estimator.fit(*forest.data(50))


def test_user_models_are_proposed_with_the_bundled_ones(user_file: Path):
    entries = load_catalogue(extra=[user_file])
    task = EncodedTask(task_type="text_classification", metric="accuracy", constraints=TaskConstraints())
    proposal = propose(task, entries)
    bert_mini = next(c for c in proposal.candidates if c.name == "bert_mini")
    assert "params (as built; none published)" in bert_mini.reason
    assert "quality unknown until you evaluate it" in bert_mini.reason
    assert any(v.name == "int8-dynamic" for v in bert_mini.variants)


def test_the_environment_variable_extends_the_default_catalogue(user_file: Path, monkeypatch):
    monkeypatch.setenv(EXTRA_CATALOGUE_ENV, str(user_file))
    assert "narrow_mlp" in [e.name for e in default_catalogue()]
    assert zoo.build("narrow_mlp").module(torch.zeros(1, 8)).shape == (1, 1)  # no entries passed
    monkeypatch.delenv(EXTRA_CATALOGUE_ENV)
    assert "narrow_mlp" not in [e.name for e in default_catalogue()]


def test_a_name_defined_twice_across_files_is_refused_naming_both(tmp_path: Path):
    document = yaml.safe_load(USER_CATALOGUE)
    document["models"][2]["name"] = "tabular_mlp"
    path = tmp_path / "clash.yaml"
    path.write_text(yaml.safe_dump(document))
    with pytest.raises(CatalogueError) as caught:
        load_catalogue(extra=[path])
    assert str(caught.value) == (
        f"{path}: entry #3 (tabular_mlp), field 'name': expected a unique name, got one already defined in "
        f"{DEFAULT_CATALOGUE_PATH}; rename it"
    )


def test_a_name_with_a_plus_is_refused_because_plus_joins_a_model_and_its_variant(tmp_path: Path):
    document = yaml.safe_load(USER_CATALOGUE)
    document["models"][2]["name"] = "gpt2+lora"
    path = tmp_path / "plus.yaml"
    path.write_text(yaml.safe_dump(document))
    with pytest.raises(CatalogueError, match=r"field 'name': expected letters, digits, '_', '-' and '\.' "
                                             r"\(no '\+' or spaces\), got 'gpt2\+lora'"):
        load_catalogue(extra=[path])


def with_builder(tmp_path: Path, index: int, builder: dict) -> Path:
    document = yaml.safe_load(USER_CATALOGUE)
    document["models"][index]["builder"] = builder
    path = tmp_path / "user.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


BERT, FOREST, MLP = 0, 1, 2


@pytest.mark.parametrize(
    ("index", "builder", "message"),
    [
        (BERT, {"kind": "python", "class": "os.system"},
         r"field 'builder.kind': expected one of zoo, transformers, sklearn, got 'python'"),
        (BERT, {"kind": "transformers", "class": "os.system"},
         r"field 'builder.class': expected a transformers model class for text_classification, named "
         r"...ForSequenceClassification, e.g. BertForSequenceClassification; got 'os.system'"),
        (BERT, {"kind": "transformers", "class": "BertModel"},
         r"'builder.class': expected a transformers model class for text_classification, named ...ForSequence"),
        (BERT, {"kind": "transformers", "class": "BertaForSequenceClassification"},
         r"'builder.class': expected a transformers model class for text_classification; transformers has no "
         r"'BertaForSequenceClassification'; did you mean BertForSequenceClassification"),
        (BERT, {"kind": "transformers", "class": "BertForSequenceClassification", "config": {"hiden_size": 64}},
         r"field 'builder.config.hiden_size': not a setting of BertConfig; did you mean hidden_size"),
        (BERT, {"kind": "transformers", "class": "BertForSequenceClassification", "weights": "bert-base-uncased"},
         r"field 'builder.weights': not a field of a transformers builder; it takes class, config, kind"),
        (FOREST, {"kind": "transformers", "class": "BertForSequenceClassification"},
         r"'builder.class': expected transformers builders serve text_classification, text_generation"),
        (FOREST, {"kind": "sklearn", "class": "KMeans"},
         r"'builder.class': expected a scikit-learn regressor class, e.g. RandomForestRegressor; got 'KMeans'"),
        (FOREST, {"kind": "sklearn", "class": "subprocess.Popen"},
         r"'builder.class': expected a scikit-learn regressor class, e.g. RandomForestRegressor; got 'subprocess"),
        (FOREST, {"kind": "sklearn", "class": "RandomForestRegressor", "params": {"n_estimator": 5}},
         r"field 'builder.params.n_estimator': not a setting of RandomForestRegressor; did you mean n_estimators"),
        (MLP, {"kind": "zoo", "name": "tabular_mlp", "params": {"d_layer": [8]}},
         r"field 'builder.params.d_layer': not a setting of zoo builder tabular_mlp; did you mean d_layers"),
        (MLP, {"kind": "zoo", "name": "resnet18"},
         r"field 'builder.name': a zoo builder for tabular_regression; resnet18 builds image_classification"),
    ],
)
def test_a_builder_outside_the_whitelist_or_with_a_wrong_setting_is_refused(
    tmp_path: Path, index: int, builder: dict, message: str
):
    path = with_builder(tmp_path, index, builder)
    with pytest.raises(CatalogueError, match=message) as caught:
        load_catalogue(extra=[path])
    assert str(caught.value).startswith(f"{path}: entry #{index + 1} (")
    assert "\n" not in str(caught.value)


def test_a_config_that_would_download_a_backbone_is_refused(tmp_path: Path):
    document = yaml.safe_load(USER_CATALOGUE)
    detector = dict(document["models"][0], name="detr", task_type="object_detection", modality="image",
                    input_shape=[3, 64, 64], num_outputs=None)
    detector["builder"] = {"kind": "transformers", "class": "DetrForObjectDetection", "config": {}}
    path = tmp_path / "detr.yaml"
    path.write_text(yaml.safe_dump({"models": [detector]}))
    with pytest.raises(CatalogueError, match=r"field 'builder.config': expected a transformers backbone_config "
                                             r"\(e.g. \{model_type: resnet\}\): DetrConfig defaults to a timm backbone"):
        load_catalogue(extra=[path])
    detector["builder"]["config"] = {"backbone": "resnet50"}
    path.write_text(yaml.safe_dump({"models": [detector]}))
    with pytest.raises(CatalogueError, match=r"backbone_config mapping .* a backbone name is looked up on the model hub"):
        load_catalogue(extra=[path])


def test_a_scikit_learn_entry_may_not_claim_a_parameter_count(tmp_path: Path):
    document = yaml.safe_load(USER_CATALOGUE)
    document["models"][FOREST]["params"] = 1000
    path = tmp_path / "forest.yaml"
    path.write_text(yaml.safe_dump(document))
    with pytest.raises(CatalogueError, match=r"'params': expected null for a scikit-learn model"):
        load_catalogue(extra=[path])


def test_a_config_that_cannot_be_built_is_refused_on_load_not_on_a_hardware_node(tmp_path: Path):
    document = yaml.safe_load(USER_CATALOGUE)
    document["models"][BERT]["builder"]["config"]["num_attention_heads"] = 5  # 256 is not a multiple of 5
    path = tmp_path / "heads.yaml"
    path.write_text(yaml.safe_dump(document))
    with pytest.raises(CatalogueError, match=r"entry #1 \(bert_mini\), field 'builder': transformers "
                                             r"BertForSequenceClassification cannot be built: ValueError: The hidden"):
        load_catalogue(extra=[path])
