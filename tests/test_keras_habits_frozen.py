"""Frozen layers as in Keras 3: ``layer.trainable = False``, the ``trainable=`` argument, ``model.trainable``,
the summary's counts, the optimizer, a frozen BatchNormalization, save/load, resume and the exports.

Keras 3 (torch backend) is the oracle where it is installed: the same initial weights set into a Keras
model of the same layers, the same layer frozen, one epoch each."""

import importlib.util
import os

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import cnnlab
from cnnlab import runs
from cnnlab.engine.callbacks import TrainingCallback
from cnnlab.engine.config import ConfigError, TrainConfig
from cnnlab.layers import BatchNormalization, Conv2D, Dense, Flatten, Input
from cnnlab.net.resolve import summarize
from cnnlab.net.spec import SpecError, parse_spec
from habits import DIFFERS, habit

TOPIC = "Frozen layers"


def mlp(data, **options):
    """Flatten, a hidden dense, batchnorm, the softmax head: every part freezing touches."""
    return cnnlab.Sequential([Input(shape=data.image_shape), Flatten(), Dense(16, activation="relu"),
                              BatchNormalization(), Dense(10, activation="softmax")], **options)


def weights(model) -> dict[str, torch.Tensor]:
    return {key: value.detach().clone() for key, value in model.module.state_dict().items()}


def changed(before: dict, model) -> set[str]:
    """The state-dict keys whose values differ from ``before``."""
    return {key for key, value in model.module.state_dict().items() if not torch.equal(before[key], value)}


def footer(text: str) -> list[str]:
    """The summary's three counts: Total, Trainable, Non-trainable params lines."""
    return [line.strip() for line in text.splitlines() if line.strip().endswith(")") and "params:" in line]


def keras_twin(model):
    """A Keras 3 model of the same layers with the same weights (Keras' layouts), not frozen."""
    keras_oracle = pytest.importorskip("keras_oracle")
    from cnnlab.export.keras_weights import keras_weights
    from cnnlab.export.network import from_model

    arrays = keras_weights(from_model(model, "test"))
    layers = [{key: value for key, value in layer.items() if key != "trainable"}
              for layer in model.spec.to_dict()["layers"]]
    unfrozen = parse_spec({"input": list(model.spec.input_shape), "layers": layers})
    keras_model, layers = keras_oracle.keras_model(unfrozen)
    for layer in layers:
        if layer.name in arrays:
            layer.set_weights([array for _, array in arrays[layer.name]])
    model.module.train()  # from_model left it in eval mode
    return keras_model


@habit("freeze a layer of a built model, then fit", keras="model.get_layer('dense').trainable = False; fit(...)",
       cnnlab="the same: the frozen kernel keeps its values (as in Keras), the others train; the summary counts "
              "it as non-trainable, as Keras does", topic=TOPIC)
@habit("count what trains", keras="len(model.trainable_weights), layer.non_trainable_weights",
       cnnlab="the same lists, as numpy arrays (Keras gives variables: len and .shape read the same)",
       status=DIFFERS, topic=TOPIC)
def test_a_frozen_layer_keeps_its_weights_as_in_keras(digits):
    keras = pytest.importorskip("keras_oracle").keras
    model = mlp(digits, seed=3)
    model.build(digits.image_shape)
    twin = keras_twin(model)
    model.get_layer("dense").trainable = False
    twin.get_layer("dense").trainable = False
    lines = []
    twin.summary(print_fn=lambda line, *args, **kwargs: lines.append(line))
    assert footer(model.summary_text()) == footer("\n".join(lines))  # Total, Trainable, Non-trainable params
    for ours, theirs in ((model, twin), (model.get_layer("dense"), twin.get_layer("dense")),
                         (model.get_layer("batch_normalization"), twin.get_layer("batch_normalization"))):
        assert [w.shape for w in ours.trainable_weights] == [tuple(w.shape) for w in theirs.trainable_weights]
        assert [w.shape for w in ours.non_trainable_weights] == [tuple(w.shape) for w in theirs.non_trainable_weights]

    before, kernel = weights(model), twin.get_layer("dense").get_weights()[0].copy()
    head = twin.get_layer("dense_1").get_weights()[0].copy()
    model.fit(digits.x_train, digits.y_train, epochs=1, validation_split=0, verbose=0)
    twin.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy")
    twin.fit(digits.x_train.astype("float32") / 255, digits.y_train, epochs=1, batch_size=32, verbose=0)

    assert not changed(before, model) & {"blocks.1.linear.weight", "blocks.1.linear.bias"}
    assert np.array_equal(twin.get_layer("dense").get_weights()[0], kernel)      # Keras: unchanged too
    assert {"blocks.3.linear.weight", "blocks.2.weight"} <= changed(before, model)
    assert not np.array_equal(twin.get_layer("dense_1").get_weights()[0], head)  # Keras: the head trains


@habit("the trainable= argument of a layer", keras="Dense(16, trainable=False)",
       cnnlab="the same: in the spec (trainable: false), the summary's counts and the fit", topic=TOPIC)
def test_the_trainable_argument_freezes_the_layer(digits):
    model = cnnlab.Sequential([Input(shape=digits.image_shape), Flatten(), Dense(16, trainable=False),
                               Dense(10, activation="softmax")], seed=1)
    assert model.get_layer("dense").trainable is False and "trainable: false" in model.to_yaml()
    info = summarize(model.spec)
    assert (info.trainable_params, info.non_trainable_params) == (170, 64 * 16 + 16)
    model.build(digits.image_shape)
    before = weights(model)
    model.fit(digits.x_train, digits.y_train, epochs=1, verbose=0)
    assert changed(before, model) == {"blocks.2.linear.weight", "blocks.2.linear.bias"}


@habit("model.trainable = False / True", keras="model.trainable = False freezes every layer",
       cnnlab="the same for every layer; a fit with nothing to train is refused (Keras fits and warns "
              "'The model does not have any trainable weights')", status=DIFFERS, topic=TOPIC)
def test_model_trainable_sets_every_layer(digits):
    model = mlp(digits, seed=2)
    assert model.trainable is True
    model.trainable = False
    assert model.trainable is False and not any(layer.trainable for layer in model.layers)
    assert summarize(model.spec).trainable_params == 0
    with pytest.raises(ConfigError, match=r"no trainable weights: every layer with weights is frozen"):
        model.fit(digits.x_train, digits.y_train, epochs=1, verbose=0)
    model.trainable = True
    assert all(layer.trainable for layer in model.layers)
    assert summarize(model.spec).non_trainable_params == 2 * 16  # batchnorm's moving statistics, as Keras
    with pytest.raises(SpecError, match="trainable: expected true or false"):
        model.trainable = "no"


@habit("model.layers and get_layer return the model's own layer objects",
       keras="model.layers[1] is model.get_layer('dense'); the layers given to Sequential are model.layers",
       cnnlab="the same, before and after the model is built", topic=TOPIC)
def test_layers_are_the_same_objects_on_each_call(digits):
    dense = Dense(16)
    model = cnnlab.Sequential([Flatten(), dense, Dense(10, activation="softmax")], seed=0)  # no input shape yet
    assert model.layers[1] is dense and model.get_layer("dense") is dense and model.layers == model.layers
    dense.trainable = False  # the user's own object: the model's spec follows
    assert model.spec.layers[1].trainable is False
    model.fit(digits.x_train, digits.y_train, epochs=1, verbose=0)  # builds: now the shapes are known
    assert model.layers[1] is dense and dense.output.shape == (None, 16) and not dense.trainable
    preset = cnnlab.Model("mlp")
    assert preset.get_layer("dense") is preset.get_layer("dense")


@habit("unfreeze a layer between two fits", keras="layer.trainable = True; compile(); fit(...)",
       cnnlab="layer.trainable = True; fit(...): each fit makes its optimizer, so no compile is needed; the "
              "other weights keep their Adam moments", topic=TOPIC)
def test_changing_trainable_between_fits_takes_effect_at_the_next_fit(digits):
    model = mlp(digits, seed=4)
    model.get_layer("dense").trainable = False
    model.fit(digits.x_train, digits.y_train, epochs=1, validation_split=0, verbose=0)
    head = model.module.blocks[3].linear.weight
    steps = int(model._state.optimizer.state[head]["step"])
    before = weights(model)
    model.get_layer("dense").trainable = True
    model.learning_rate = 5e-4  # set between the fits: the next fit's optimizer goes on from it
    model.fit(digits.x_train, digits.y_train, epochs=1, validation_split=0, verbose=0)
    assert {"blocks.1.linear.weight", "blocks.3.linear.weight"} <= changed(before, model)
    assert model.learning_rate == 5e-4
    assert int(model._state.optimizer.state[head]["step"]) == 2 * steps  # the head's moments were kept
    assert int(model._state.optimizer.state[model.module.blocks[1].linear.weight]["step"]) == steps


def test_frozen_weights_take_no_weight_decay(digits):
    model = mlp(digits, seed=5)
    model.compile(optimizer=cnnlab.optimizers.AdamW(learning_rate=0.01, weight_decay=0.5))
    model.build(digits.image_shape)
    model.get_layer("dense").trainable = False
    before = weights(model)
    model.fit(digits.x_train, digits.y_train, epochs=1, verbose=0)
    assert not changed(before, model) & {"blocks.1.linear.weight", "blocks.1.linear.bias"}


@habit("a frozen BatchNormalization", keras="bn.trainable = False: it normalises with its moving statistics, "
       "also in training, and does not update them", cnnlab="the same (Keras 3's rule)", topic=TOPIC)
def test_a_frozen_batchnorm_runs_in_inference_mode_as_in_keras(digits):
    model = mlp(digits, seed=6)
    model.fit(digits.x_train, digits.y_train, epochs=1, verbose=0)  # moving statistics away from 0 and 1
    model.get_layer("batch_normalization").trainable = False
    twin = keras_twin(model)
    twin.get_layer("batch_normalization").trainable = False
    images = digits.x_test[:64]
    with torch.no_grad():
        ours = model.module.train().probabilities(torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255)
    theirs = twin(images.astype("float32") / 255, training=True)
    assert np.abs(ours.numpy() - np.asarray(theirs.detach().cpu())).max() < 1e-5
    statistics = model.module.blocks[2].running_mean.clone()
    model.fit(digits.x_train, digits.y_train, epochs=1, verbose=0)
    assert torch.equal(model.module.blocks[2].running_mean, statistics)


@habit("save and load a model with a frozen layer", keras="model.save(...); load_model(...) keeps trainable",
       cnnlab="the same with model.save('m.cnnlab'): the flag is in the spec the file holds", topic=TOPIC)
def test_save_and_load_keep_the_frozen_layer(digits, tmp_path):
    model = mlp(digits, seed=7)
    model.get_layer("dense").trainable = False
    model.fit(digits.x_train, digits.y_train, epochs=1, verbose=0)
    loaded = cnnlab.load_model(model.save(tmp_path / "m.cnnlab"))
    assert loaded.get_layer("dense").trainable is False and loaded.get_layer("dense_1").trainable is True
    assert footer(loaded.summary_text()) == footer(model.summary_text())
    before = weights(loaded)
    loaded.fit(digits.x_train, digits.y_train, epochs=1, verbose=0)
    assert not changed(before, loaded) & {"blocks.1.linear.weight", "blocks.1.linear.bias"}


class StopAfterFirstEpoch(TrainingCallback):
    """Records the frozen kernel as training starts; stops the run once epoch 1 is checkpointed."""

    kernel = None

    def on_session(self, session, facts):
        self.kernel = session.state.model.blocks[1].linear.weight.detach().clone()

    def on_epoch_end(self, record, state):
        if record.epoch == 1:
            raise KeyboardInterrupt


FROZEN_SPEC = {"name": "frozen", "layers": [{"kind": "flatten"}, {"kind": "dense", "units": 16, "trainable": False},
                                            {"kind": "dense", "units": 10, "activation": "softmax"}]}


def test_a_run_with_a_frozen_layer_resumes_with_it_frozen(tmp_path):
    stop = StopAfterFirstEpoch()
    with pytest.raises(KeyboardInterrupt):
        runs.train(FROZEN_SPEC, "digits", TrainConfig(epochs=2, batch_size=64), out=tmp_path, name="r",
                   callback=stop)
    assert "trainable: false" in (tmp_path / "r" / "spec.yaml").read_text()
    runs.resume(tmp_path / "r")
    model = cnnlab.load_model(tmp_path / "r")
    assert torch.equal(model.module.blocks[1].linear.weight, stop.kernel)
    assert not model.module.blocks[1].linear.weight.requires_grad


def test_exports_carry_the_frozen_layer(digits, tmp_path):
    model = mlp(digits, seed=8)
    model.get_layer("dense").trainable = False
    model.get_layer("batch_normalization").trainable = False
    model.fit(digits.x_train, digits.y_train, epochs=1, verbose=0)
    pytorch = model.export(tmp_path / "net.py", format="pytorch")
    source = pytorch[0].read_text()
    blocks = [line.split("#")[1].split()[1] for line in source.splitlines() if ".requires_grad_(False)," in line]
    assert blocks == ["dense", "batch_normalization"] and "frozen_norm(without(" not in source
    loader = importlib.util.spec_from_file_location("frozen_net", pytorch[0])
    exported = importlib.util.module_from_spec(loader)
    loader.loader.exec_module(exported)
    net = getattr(exported, type_name(source))()
    frozen = {name for name, param in net.named_parameters() if not param.requires_grad}
    assert frozen == {"blocks.1.linear.weight", "blocks.1.linear.bias", "blocks.2.weight", "blocks.2.bias"}
    assert not net.train().blocks[2].training  # a frozen batchnorm stays in inference mode
    if os.environ.get("KERAS_BACKEND", "torch") == "torch" and pytest.importorskip("keras_oracle"):
        keras_source = model.export(tmp_path / "keras_net.py", format="keras")[0].read_text()
        assert keras_source.count("trainable=False") == 2


def type_name(source: str) -> str:
    """The network's class: the file's last module class (the layers' helper classes come first)."""
    return [line.split()[1].split("(")[0] for line in source.splitlines()
            if line.startswith("class ") and "(nn.Module)" in line][-1]


SPECS = [
    [{"kind": "flatten"}, {"kind": "dense", "units": 12}, {"kind": "batchnorm"}, {"kind": "dense", "units": 10}],
    [{"kind": "conv2d", "filters": 4, "kernel": 3}, {"kind": "batchnorm", "center": False},
     {"kind": "separable_conv2d", "filters": 6, "kernel": 3}, {"kind": "globalavgpool2d"},
     {"kind": "dense", "units": 10}],
    [{"kind": "depthwise_conv2d", "kernel": 2, "depth_multiplier": 2}, {"kind": "flatten"},
     {"kind": "dropout", "rate": 0.5}, {"kind": "dense", "units": 10, "use_bias": False}],
]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(range(len(SPECS))), st.data())
def test_non_trainable_count_is_the_frozen_layers_and_batchnorm_statistics(which, data):
    layers = [{**layer, "trainable": data.draw(st.booleans())} for layer in SPECS[which]]
    spec = parse_spec({"input": [8, 8, 3], "layers": layers})
    info = summarize(spec)
    frozen = sum(layer.params for layer in info.layers if not layer.layer.trainable)
    statistics = sum(2 * layer.output_shape[-1] for layer in info.layers
                     if layer.layer.kind == "batchnorm" and layer.layer.trainable)
    assert info.non_trainable_params == frozen + statistics
    from cnnlab.net.builder import build_model

    module = build_model(spec)  # torch agrees: what takes a gradient is what the summary calls trainable
    assert sum(p.numel() for p in module.parameters() if p.requires_grad) == info.trainable_params


@pytest.mark.parametrize("which", range(len(SPECS)))
def test_keras_counts_the_same_frozen_layers(which):
    keras_oracle = pytest.importorskip("keras_oracle")
    layers = [{**layer, "trainable": index % 2 == 0} for index, layer in enumerate(SPECS[which])]
    spec = parse_spec({"input": [8, 8, 3], "layers": layers})
    ours = [(layer.output_shape, layer.trainable_params, layer.non_trainable_params)
            for layer in summarize(spec).layers]
    assert ours == keras_oracle.keras_layer_facts(spec)


def test_a_layer_object_refuses_a_non_boolean_trainable():
    with pytest.raises(SpecError, match="Conv2D 'c': trainable: expected true or false"):
        Conv2D(4, 3, name="c").trainable = 1


def test_cnnlab_train_on_a_spec_file_keeps_the_frozen_layer(tmp_path):
    import yaml

    from cnnlab.cli.main import main

    (tmp_path / "frozen.yaml").write_text(yaml.safe_dump(FROZEN_SPEC))
    assert main(["train", str(tmp_path / "frozen.yaml"), "--dataset", "digits", "--epochs", "1", "--quiet",
                 "--out", str(tmp_path), "--name", "r"]) == 0
    model = cnnlab.load_model(tmp_path / "r")
    assert [layer.trainable for layer in model.layers] == [True, False, True]
    assert "Non-trainable params: 1,040" in model.summary_text()


@habit("save('m.keras') with a frozen layer", keras="the .keras file keeps trainable=False",
       cnnlab="the same: Keras reads the layer as frozen, and cnnlab.load_model reads it back frozen", topic=TOPIC)
def test_a_keras_file_keeps_the_frozen_layer(digits, tmp_path):
    keras = pytest.importorskip("keras_oracle").keras
    model = mlp(digits, seed=9)
    model.get_layer("dense").trainable = False
    model.fit(digits.x_train, digits.y_train, epochs=1, verbose=0)
    path = tmp_path / "m.keras"
    model.save(path)
    theirs = keras.saving.load_model(path)
    assert [layer.name for layer in theirs.layers if not layer.trainable] == ["dense"]
    ours = cnnlab.load_model(path)
    assert [layer.name for layer in ours.layers if not layer.trainable] == ["dense"]


def test_the_presets_keep_the_digests_of_earlier_runs():
    """`trainable` became a field of every kind; a comparison's run folders (named by the spec's digest)
    made before must still be found, so a digest reads a conv2d's `trainable: true` as it was written."""
    from cnnlab.net.presets import preset
    from cnnlab.runs.records import spec_digest

    # fast's changed on 2026-12-07 with its network (its flip became alternating): a new network, new runs
    assert {name: spec_digest(preset(name))[:12] for name in ("mlp", "cnn", "fast")} == {
        "mlp": "c235881ddaeb", "cnn": "4dc842866550", "fast": "e42f3d5fa3aa"}


def test_a_new_head_on_another_models_layers_is_frozen_through_its_own_object():
    inp = Input(shape=(8, 8, 1))
    base = cnnlab.Model(inputs=inp, outputs=Dense(4)(Flatten()(inp)))
    head = Dense(3, name="head")
    transfer = cnnlab.Model(inputs=base.layers[0].output, outputs=head(base.get_layer("dense").output))
    head.trainable = False  # the user's object of the new model: its spec follows
    assert transfer.get_layer("head").trainable is False and base.get_layer("dense").trainable is True
    assert summarize(transfer.spec).non_trainable_params == 4 * 3 + 3


@habit("transfer learning, then fine-tuning", keras="base.trainable = False; new head on base's layers; fit; "
       "base.trainable = True; compile; fit", cnnlab="the same (no compile needed): a layer taken from another "
       "model shares its weights and its one trainable flag, as Keras' shared layer object does", topic=TOPIC)
def test_transfer_learning_then_fine_tuning_as_in_keras(digits):
    inp = Input(shape=digits.image_shape)
    base = cnnlab.Model(inputs=inp, outputs=Dense(10, activation="softmax", name="out")(
        Dense(16, activation="relu", name="features")(Flatten()(inp))), seed=10)
    base.fit(digits.x_train, digits.y_train, epochs=1, verbose=0)
    base.trainable = False
    head = Dense(10, activation="softmax", name="head")(base.get_layer("features").output)
    transfer = cnnlab.Model(inputs=base.layers[0].output, outputs=head, seed=11)
    flags = [layer.trainable for layer in transfer.layers]
    assert flags == [True, False, False, True]  # input, flatten, features (base), head
    kernel = base.module.blocks[1].linear.weight.detach().clone()
    transfer.fit(digits.x_train, digits.y_train, epochs=1, verbose=0)
    assert torch.equal(base.module.blocks[1].linear.weight, kernel)  # the base stayed frozen
    base.trainable = True  # fine-tuning: the shared layers train in the new model too
    assert transfer.get_layer("features").trainable is True
    transfer.fit(digits.x_train, digits.y_train, epochs=1, verbose=0)
    assert not torch.equal(base.module.blocks[1].linear.weight, kernel)  # the same weights, trained by transfer
    transfer.get_layer("features").trainable = False  # set through the new model: the one flag again
    assert base.get_layer("features").trainable is False
