"""Keras' file habits: ``model.save("m.keras")``/``"m.h5"``, ``ModelCheckpoint("best.keras")``,
``save_weights("w.weights.h5")`` and ``load_model("m.keras")``, each checked by loading the file in Keras 3
itself (torch backend) and comparing its predictions with cnnlab's on digits."""

import io
import os
import random
import sys
import warnings
import zipfile

import numpy as np
import pytest

import cnnlab
from cnnlab.callbacks import ModelCheckpoint
from cnnlab.layers import Add, BatchNormalization, Conv2D, Dense, Flatten, Input, MaxPooling2D
from cnnlab.utils import to_categorical
from habits import REFUSED, habit

from keras_oracle import keras

TOPIC = "Saving"
ATOL = 1e-5


def small_cnn(data):
    inp = Input(shape=data.image_shape)
    x = MaxPooling2D()(Conv2D(8, 3, activation="relu", padding="same")(inp))
    return cnnlab.Model(inputs=inp, outputs=Dense(10, activation="softmax")(Flatten()(x)), seed=0)


def graph_model(data):
    """Two branches joined by Add, batchnorm on one: a graph, not a chain."""
    inp = Input(shape=data.image_shape)
    a = Conv2D(8, 3, activation="relu", padding="same")(inp)
    b = Conv2D(8, 1, padding="same")(BatchNormalization()(a))
    x = MaxPooling2D()(Add()([a, b]))
    return cnnlab.Model(inputs=inp, outputs=Dense(10, activation="softmax")(Flatten()(x)), seed=0)


@pytest.fixture(scope="module")
def trained(digits):
    """A small CNN and a graph model, each trained one epoch on digits."""
    models = {}
    for name, build in (("cnn", small_cnn), ("graph", graph_model)):
        model = build(digits)
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        model.fit(digits.x_train, digits.y_train, epochs=1, batch_size=64, verbose=0)
        models[name] = model
    return models


def empty_h5() -> bytes:
    import h5py

    buffer = io.BytesIO()
    with h5py.File(buffer, "w"):
        pass
    return buffer.getvalue()


def keras_predict(keras_model, images):
    """Keras' probabilities for uint8 images: cnnlab's preprocessing (divided by 255) done by hand."""
    return np.asarray(keras_model.predict(images.astype("float32") / 255, verbose=0))


@habit("save a model as .keras", keras="model.save('m.keras'); keras.saving.load_model('m.keras')",
       cnnlab="the same: Keras 3's own .keras file (written by Keras), equal predictions", topic=TOPIC)
@pytest.mark.parametrize("name", ["cnn", "graph"])
def test_save_keras_loads_in_keras_with_equal_predictions(trained, digits, tmp_path, name):
    model = trained[name]
    random.seed(5)
    np.random.seed(5)
    path = model.save(tmp_path / "m.keras")
    # Keras draws its layers' default seeds from Python's generator: the user's are given back untouched.
    assert random.random() == random.Random(5).random()
    assert np.random.random() == np.random.RandomState(5).random_sample()
    assert zipfile.is_zipfile(path)
    with zipfile.ZipFile(path) as archive:
        assert {"config.json", "metadata.json", "model.weights.h5"} <= set(archive.namelist())
    loaded = keras.saving.load_model(path)
    images = digits.x_test[:64]
    np.testing.assert_allclose(keras_predict(loaded, images), model.predict(images), atol=ATOL)


@habit("load_model in Keras, then evaluate", keras="load_model('m.keras').evaluate(x, y)",
       cnnlab="the same: the file is compiled as model.compile was (optimizer, learning rate, loss, accuracy); "
              "the optimizer's moments are not saved", topic=TOPIC)
def test_keras_file_is_compiled_as_the_model_was(digits, tmp_path):
    model = small_cnn(digits)
    model.compile(optimizer=cnnlab.optimizers.SGD(learning_rate=0.05), loss="categorical_crossentropy",
                  metrics=["accuracy"])
    y_train, y_test = to_categorical(digits.y_train, 10), to_categorical(digits.y_test, 10)
    model.fit(digits.x_train, y_train, epochs=1, batch_size=64, verbose=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # Keras loads the optimizer without skipping its variables
        loaded = keras.saving.load_model(model.save(tmp_path / "m.keras"))
    assert type(loaded.optimizer).__name__ == "SGD"  # its name is sgd, sgd_1... as Keras numbers them
    assert loaded.optimizer.get_config()["learning_rate"] == pytest.approx(0.05)
    theirs = loaded.evaluate(digits.x_test.astype("float32") / 255, y_test, verbose=0, return_dict=True)
    ours = model.evaluate(digits.x_test, y_test, verbose=0, return_dict=True)
    assert theirs["loss"] == pytest.approx(ours["loss"], abs=1e-4)
    assert theirs["accuracy"] == pytest.approx(ours["accuracy"], abs=1e-6)


@habit("load a .keras file", keras="keras.saving.load_model('m.keras')",
       cnnlab="cnnlab.load_model('m.keras'): a file cnnlab wrote reads back exactly; one Keras wrote, of the "
              "layer kinds cnnlab has (Sequential or one-input functional), reads too", topic=TOPIC)
def test_load_model_reads_keras_files_back(trained, digits, tmp_path):
    model = trained["graph"]
    path = model.save(tmp_path / "m.keras")
    again = cnnlab.load_model(path)
    images = digits.x_test[:64]
    np.testing.assert_allclose(again.predict(images), model.predict(images), atol=ATOL)
    assert again.spec.to_dict() == model.spec.to_dict()
    # A .keras file Keras itself wrote, its layers named by Keras.
    theirs = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(4, 3, activation="relu"),
                               keras.layers.BatchNormalization(), keras.layers.MaxPooling2D(),
                               keras.layers.Flatten(), keras.layers.Dropout(0.2),
                               keras.layers.Dense(10, activation="softmax")])
    theirs.layers[1].set_weights([np.linspace(0.5, 1.5, 4), np.linspace(-0.2, 0.2, 4),
                                  np.linspace(0, 0.1, 4), np.linspace(0.5, 2, 4)])  # not the identity
    theirs.save(tmp_path / "theirs.keras")
    read = cnnlab.load_model(tmp_path / "theirs.keras")
    np.testing.assert_allclose(read.predict(images), keras_predict(theirs, images), atol=ATOL)


def keras_graph():
    """A functional model built in Keras, of most layer kinds cnnlab has, with random weights."""
    layers = keras.layers
    inp = keras.Input((8, 8, 1))
    a = layers.Conv2D(6, 3, padding="same", activation="relu")(layers.Rescaling(2.0, offset=-1.0)(inp))
    b = layers.DepthwiseConv2D(3, padding="same")(a)
    c = layers.SeparableConv2D(6, 3, padding="same")(a)
    x = layers.Activation("relu")(layers.BatchNormalization(center=False)(layers.Add()([a, b, c])))
    x = layers.Concatenate()([layers.AveragePooling2D(2)(x), layers.MaxPooling2D(2)(x)])
    x = layers.GlobalAveragePooling2D()(layers.ZeroPadding2D(1)(x))
    model = keras.Model(inp, layers.Dense(10, activation="softmax")(layers.Dropout(0.1)(x)))
    rng = np.random.default_rng(0)
    for layer in model.layers:  # moving variances stay positive
        layer.set_weights([rng.normal(size=w.shape).astype("float32") * 0.3 + ("variance" in v.path)
                           for w, v in zip(layer.get_weights(), layer.weights, strict=True)])
    return model


@habit("load a model Keras saved", keras="keras.saving.load_model('theirs.keras' or 'theirs.h5')",
       cnnlab="cnnlab.load_model reads it (Sequential or one-input functional, cnnlab's layer kinds); a setting "
              "cnnlab has no counterpart for is refused, naming it", topic=TOPIC)
@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_load_model_reads_a_graph_keras_saved(digits, tmp_path, suffix):
    theirs = keras_graph()
    theirs.save(tmp_path / f"theirs{suffix}")
    images = digits.x_test[:64]
    read = cnnlab.load_model(tmp_path / f"theirs{suffix}")
    np.testing.assert_allclose(read.predict(images), keras_predict(theirs, images), atol=ATOL)
    inp = keras.Input((8, 8, 1))
    regularized = keras.Model(inp, keras.layers.Dense(3, kernel_regularizer="l2")(keras.layers.Flatten()(inp)))
    regularized.save(tmp_path / f"l2{suffix}")
    with pytest.raises(cnnlab.CnnlabError, match="layer 'dense.*' \\(Dense\\) sets kernel_regularizer"):
        cnnlab.load_model(tmp_path / f"l2{suffix}")


@habit("save a model as .h5 (legacy HDF5)", keras="model.save('m.h5'); keras.saving.load_model('m.h5')",
       cnnlab="the same: Keras' legacy HDF5 file, written by Keras; cnnlab.load_model reads it too", topic=TOPIC)
def test_save_h5_loads_in_keras(trained, digits, tmp_path):
    model = trained["cnn"]
    path = model.save(tmp_path / "m.h5")
    images = digits.x_test[:64]
    np.testing.assert_allclose(keras_predict(keras.saving.load_model(path), images), model.predict(images),
                               atol=ATOL)
    np.testing.assert_allclose(cnnlab.load_model(path).predict(images), model.predict(images), atol=ATOL)


@habit("ModelCheckpoint to a .keras file", keras="ModelCheckpoint('best.keras', save_best_only=True)",
       cnnlab="the same: Keras loads the file; save_weights_only=True with 'w.weights.h5' writes Keras' "
              "weights", topic=TOPIC)
def test_model_checkpoint_writes_keras_files(digits, tmp_path):
    model = small_cnn(digits)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    best, weights = tmp_path / "best.keras", tmp_path / "w.weights.h5"
    model.fit(digits.x_train, digits.y_train, epochs=1, batch_size=64, validation_split=0.2, verbose=0,
              callbacks=[ModelCheckpoint(str(best), save_best_only=True),
                         ModelCheckpoint(str(weights), save_weights_only=True)])
    images = digits.x_test[:64]
    loaded = keras.saving.load_model(best)  # one epoch: the best is the last
    np.testing.assert_allclose(keras_predict(loaded, images), model.predict(images), atol=ATOL)
    fresh = keras.saving.load_model(best)
    for layer in fresh.layers:
        layer.set_weights([np.zeros_like(w) for w in layer.get_weights()])
    fresh.load_weights(weights)  # Keras reads cnnlab's .weights.h5
    np.testing.assert_allclose(keras_predict(fresh, images), model.predict(images), atol=ATOL)
    other = small_cnn(digits)
    other.load_weights(weights)  # and so does cnnlab
    np.testing.assert_allclose(other.predict(images), model.predict(images), atol=ATOL)


@habit("save .keras where Keras is not installed", keras="(Keras is there)",
       cnnlab="a clear error naming the missing package, `pip install 'cnnlab[keras]'` and .cnnlab; nothing "
              "written", status=REFUSED, topic=TOPIC)
def test_missing_package_is_a_clear_error(trained, tmp_path, monkeypatch):
    model = trained["cnn"]
    kept = model.save(tmp_path / "kept.keras")
    monkeypatch.setitem(sys.modules, "keras", None)  # `import keras` now raises ImportError
    with pytest.raises(cnnlab.CnnlabError, match=r"needs the 'keras' package.*cnnlab\[keras\].*\.cnnlab"):
        model.save(tmp_path / "m.keras")
    assert not os.path.lexists(tmp_path / "m.keras")
    with pytest.raises(cnnlab.CnnlabError, match="'keras' package"):  # found before training, not after epoch 1
        ModelCheckpoint(str(tmp_path / "best.keras"))
    assert model.save(tmp_path / "m.cnnlab").exists()  # the way out named works
    monkeypatch.setitem(sys.modules, "h5py", None)
    with pytest.raises(cnnlab.CnnlabError, match=r"reading a Keras file needs the 'h5py' package.*cnnlab\[keras\]"):
        cnnlab.load_model(kept)


@habit("save over an existing .keras file", keras="model.save('m.keras') replaces whatever is there",
       cnnlab="replaces a file cnnlab wrote; a file it did not write (or a link) is refused and left as it is",
       status=REFUSED, topic=TOPIC)
def test_foreign_file_is_never_overwritten(trained, digits, tmp_path):
    model = trained["cnn"]
    own = tmp_path / "m.keras"
    model.save(own)
    model.save(own)  # its own file: replaced
    assert keras.saving.load_model(own) is not None
    foreign = tmp_path / "theirs.keras"
    keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)]).save(foreign)  # a real .keras, not cnnlab's
    before = foreign.read_bytes()
    with pytest.raises(cnnlab.CnnlabError, match="not a file cnnlab wrote"):
        model.save(foreign)
    assert foreign.read_bytes() == before
    link = tmp_path / "link.keras"
    link.symlink_to(own)
    own_bytes = own.read_bytes()
    with pytest.raises(cnnlab.CnnlabError, match="symbolic link"):
        model.save(link)
    assert own.read_bytes() == own_bytes and link.is_symlink()


@habit("save_weights to a name Keras refuses", keras="model.save_weights('w.h5'): ValueError (.weights.h5)",
       cnnlab="the same rule: refused, naming .weights.h5", status=REFUSED, topic=TOPIC)
def test_save_weights_needs_keras_weights_name(trained, tmp_path):
    with pytest.raises(cnnlab.CnnlabError, match=r"\.weights\.h5"):
        trained["cnn"].save_weights(tmp_path / "w.h5")
    assert not os.path.lexists(tmp_path / "w.h5")


def test_reading_a_keras_file_is_bounded(trained, tmp_path):
    """A deflated member (a zip bomb's way) is refused before any member is read; so is a file that is no zip."""
    path = trained["cnn"].save(tmp_path / "m.keras")
    packed = tmp_path / "packed.keras"
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(packed, "w", zipfile.ZIP_DEFLATED) as target:
        for member in source.namelist():
            target.writestr(member, source.read(member))
    with pytest.raises(cnnlab.CnnlabError, match="compressed"):
        cnnlab.load_model(packed)
    junk = tmp_path / "junk.keras"
    junk.write_bytes(b"not a zip" * 10)
    with pytest.raises(cnnlab.CnnlabError, match="not a readable archive"):
        cnnlab.load_model(junk)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("config.json", '{"class_name": "Sequential", "config": {"layers": [{"class_name": '
                                        '"LSTM", "config": {"name": "lstm"}}]}}')
        archive.writestr("model.weights.h5", empty_h5())
    (tmp_path / "lstm.keras").write_bytes(buffer.getvalue())
    with pytest.raises(cnnlab.CnnlabError, match="LSTM, which cnnlab has no layer kind for"):
        cnnlab.load_model(tmp_path / "lstm.keras")


def test_files_earlier_versions_wrote_under_keras_names_still_load(trained, digits, tmp_path):
    """cnnlab once wrote its own safetensors files under Keras' names: they still load, and save replaces them."""
    from cnnlab.runs.model_file import write_model_file, write_weights_file

    model, images = trained["cnn"], digits.x_test[:32]
    old, weights = tmp_path / "old.keras", tmp_path / "old.weights.h5"
    write_model_file(old, model.module, model.spec, model.class_names)
    write_weights_file(weights, model.module)
    np.testing.assert_allclose(cnnlab.load_model(old).predict(images), model.predict(images), atol=ATOL)
    other = small_cnn(digits)
    other.load_weights(weights)
    np.testing.assert_allclose(other.predict(images), model.predict(images), atol=ATOL)
    model.save(old)  # cnnlab's own file: replaced, now by Keras' format
    np.testing.assert_allclose(keras_predict(keras.saving.load_model(old), images), model.predict(images), atol=ATOL)


def test_hdf5_links_to_other_files_are_refused(trained, digits, tmp_path):
    """An HDF5 weights file is followed only through hard links to its own plain datasets: an external link,
    or a dataset whose numbers live in another file, is refused before anything is read from there."""
    import h5py

    model = trained["cnn"]
    path = model.save_weights(tmp_path / "w.weights.h5")
    secret = tmp_path / "secret.bin"
    secret.write_bytes(np.arange(10, dtype=np.float32).tobytes())
    linked, external = tmp_path / "linked.weights.h5", tmp_path / "external.weights.h5"
    for target in (linked, external):
        target.write_bytes(path.read_bytes())
    with h5py.File(linked, "r+") as handle:
        del handle["layers/dense"]
        handle["layers/dense"] = h5py.ExternalLink(str(path), "layers/dense")
    with h5py.File(external, "r+") as handle:
        del handle["layers/dense/vars/1"]
        handle["layers/dense/vars"].create_dataset("1", (10,), np.float32, external=[(str(secret), 0, 40)])
    for hostile, why in ((linked, "link to elsewhere"), (external, "in another file")):
        with pytest.raises(cnnlab.CnnlabError, match=why):
            small_cnn(digits).load_weights(hostile)
