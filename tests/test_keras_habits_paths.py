"""Keras' module paths: cnnlab.datasets.cifar10, cnnlab.models, cnnlab.utils.image_dataset_from_directory
and plot_model (drawn without pydot or Graphviz)."""

import functools
import sys

import numpy as np
import pytest

import cnnlab
from cnnlab.data.dataset import DatasetError
from cnnlab.net.resolve import fit_spec
from cnnlab.presenters.graph_plot import MARK, GraphOptions, graph_nodes
from cnnlab.presenters.plots import FigureError
from cnnlab.utils import ImageDataset, image_dataset_from_directory, plot_model
from habits import DIFFERS, habit

from fixtures import image_folder, make_cifar_archive
from httpserver import LoopbackServer


@habit("load CIFAR-10 the Keras way", keras="from keras.datasets import cifar10; cifar10.load_data()",
       cnnlab="from cnnlab.datasets import cifar10; the same shapes and dtypes: uint8 (N, 32, 32, 3), labels "
              "uint8 (N, 1); downloaded once, verified by sha256", topic="Module paths")
def test_cifar10_load_data_has_keras_shapes_and_dtypes(tmp_path, monkeypatch):
    import cnnlab.data.cifar10 as official
    from cnnlab.datasets import cifar10

    archive, release, images = make_cifar_archive(tmp_path / "made")
    with LoopbackServer(archive.read_bytes()) as server:
        served = release.__class__(server.url, release.filename, release.size, release.sha256, release.md5s)
        monkeypatch.setattr(official, "load_cifar10", functools.partial(official.load_cifar10, release=served))
        (x_train, y_train), (x_test, y_test) = cifar10.load_data(cache=tmp_path / "cache")
    assert x_train.shape == (30, 32, 32, 3) and x_train.dtype == np.uint8
    assert y_train.shape == (30, 1) and y_train.dtype == np.uint8 and y_test.shape == (len(x_test), 1)
    assert np.array_equal(np.concatenate([x_train, x_test]), images)
    assert cnnlab.utils.to_categorical(y_train).shape == (30, 10)  # Keras' (N, 1) labels one-hot as in Keras


@habit("the Keras model classes by their module", keras="from keras.models import Model, Sequential, load_model",
       cnnlab="from cnnlab.models import Model, Sequential, load_model", topic="Module paths")
def test_models_module_and_digits_train_as_keras_arrays():
    from cnnlab.datasets import digits
    from cnnlab.models import Model, Sequential, load_model

    assert (Model, Sequential, load_model) == (cnnlab.Model, cnnlab.Sequential, cnnlab.load_model)
    assert cnnlab.datasets.cifar10.load_data and cnnlab.models.Model is Model  # reachable after `import cnnlab`
    (x_train, y_train), (x_test, y_test) = digits.load_data()
    assert y_train.shape == (len(x_train), 1) and y_train.dtype == np.uint8
    model = Model("mlp")
    model.fit(x_train, y_train, epochs=1, verbose=0)  # (N, 1) labels, as Keras' load_data gives them
    assert model.predict(x_test[:2]).shape == (2, 10)


@habit("images from class folders", keras="keras.utils.image_dataset_from_directory(d, validation_split=0.2, "
       "subset='both', seed=1, image_size=(8, 8), batch_size=4)",
       cnnlab="cnnlab.utils.image_dataset_from_directory, the same arguments and batches (float32 0..255, "
              "int32 labels); read and cached by content", topic="Module paths")
def test_image_dataset_from_directory_as_keras(tmp_path):
    folder = image_folder(tmp_path / "pets", classes=("cat", "dog", "emu"), per_class=10)
    train, val = image_dataset_from_directory(folder, validation_split=0.2, subset="both", seed=1,
                                              image_size=(8, 8), batch_size=4, cache=tmp_path / "c")
    assert train.class_names == ["cat", "dog", "emu"] and len(val.labels) == 6 and len(train.labels) == 24
    assert len(train) == 6  # batches, as len() of Keras' dataset
    images, labels = next(iter(train))
    assert images.shape == (4, 8, 8, 3) and images.dtype == np.float32 and labels.dtype == np.int32
    assert 1 < images.max() <= 255  # Keras' pixels: 0..255 floats
    seen = {tuple(image.ravel()) for batch, _ in val for image in batch}
    assert not seen & {tuple(image.ravel()) for image in train.images.astype(np.float32)}  # no overlap
    again = image_dataset_from_directory(folder, validation_split=0.2, subset="validation", seed=1,
                                         image_size=(8, 8), cache=tmp_path / "c")
    assert np.array_equal(np.sort(again.labels), np.sort(val.labels))  # the same seed, the same subset
    one_hot = image_dataset_from_directory(folder, label_mode="categorical", image_size=(8, 8), shuffle=False,
                                           cache=tmp_path / "c")
    first = next(iter(one_hot))[1]
    assert first.shape == (30, 3) and first.dtype == np.float32 and np.array_equal(first.argmax(1), one_hot.labels)


def test_image_dataset_from_directory_refuses_as_keras_does(tmp_path):
    folder = image_folder(tmp_path / "pets")
    with pytest.raises(DatasetError, match="give a seed"):
        image_dataset_from_directory(folder, validation_split=0.2, subset="training", cache=tmp_path / "c")
    with pytest.raises(DatasetError, match="label_mode must be"):
        image_dataset_from_directory(folder, label_mode="sparse", cache=tmp_path / "c")
    with pytest.raises(DatasetError, match="class_names must be the class folders"):
        image_dataset_from_directory(folder, class_names=["cat", "cow"], image_size=(8, 8), cache=tmp_path / "c")
    renamed = image_dataset_from_directory(folder, class_names=["dog", "cat"], image_size=(8, 8), shuffle=False,
                                           cache=tmp_path / "c")
    assert renamed.class_names == ["dog", "cat"] and renamed.labels[0] == 0  # their order sets the indices
    assert isinstance(renamed, ImageDataset)


def _built(name: str):
    model = cnnlab.Model(name)
    model.spec = fit_spec(model.spec, (32, 32, 3), 10)
    return model


@habit("a picture of the model", keras="keras.utils.plot_model(model, to_file='model.png', show_shapes=True) "
       "(needs pydot and Graphviz)", cnnlab="the same call; drawn with matplotlib, nothing else to install",
       status=DIFFERS, topic="Module paths")
def test_plot_model_draws_every_layer_without_graphviz(tmp_path):
    model = _built("resnet20")
    path = tmp_path / "model.png"
    plot_model(model, to_file=path, show_shapes=True)
    data = path.read_bytes()
    assert data.startswith(b"\x89PNG") and MARK.encode() in data and "pydot" not in sys.modules
    nodes = graph_nodes(cnnlab.summarize(model.spec), GraphOptions(show_shapes=True, show_layer_names=True))
    assert len(nodes) == len(model.spec.layers) + 1  # the input, then one box per layer
    adds = [node for node in nodes if "(Add)" in node.text]
    assert adds and all(len(node.inputs) == 2 for node in adds)  # each shortcut is drawn as an arrow
    stem = next(node for node in nodes if node.name == "stem_conv")
    assert "(None, 32, 32, 3) → (None, 32, 32, 16)" in stem.text
    plot_model(model, to_file=tmp_path / "model.png", rankdir="LR")  # a re-run cell replaces its own picture
    assert path.read_bytes() != data


def test_plot_model_never_replaces_a_file_it_did_not_draw(tmp_path):
    mine = tmp_path / "holiday.png"
    mine.write_bytes(b"\x89PNG not a graph")
    with pytest.raises(FigureError, match="not a picture plot_model drew"):
        plot_model(_built("cnn"), to_file=mine)
    assert mine.read_bytes() == b"\x89PNG not a graph"
    with pytest.raises(FigureError, match="rankdir must be"):
        plot_model(_built("cnn"), to_file=tmp_path / "a.png", rankdir="BT")
    with pytest.raises(FigureError, match=".png, .svg or .pdf"):
        plot_model(_built("cnn"), to_file=tmp_path / "a.gif")


@habit("fit(x, y) with Keras' habits where cnnlab deliberately differs", keras="1 epoch, no validation; "
       "validation_split takes the last images", cnnlab="the experiment's recipe (5 epochs, 20% held out, "
       "stratified and seeded), said in a one-line note the first time it applies", status=DIFFERS,
       topic="Deliberate differences")
def test_a_deliberate_difference_is_noted_once(capsys, monkeypatch):
    from cnnlab.api import keras_notes

    monkeypatch.setattr(keras_notes, "SHOWN", set())
    data = cnnlab.load_data("digits")
    model = cnnlab.Model("mlp", seed=0)
    model.fit(data.x_train, data.y_train, epochs=1, verbose=2)
    first = capsys.readouterr().out
    assert "cnnlab: note: validation_split holds out a seeded, stratified share" in first
    assert "cnnlab: note: fit's defaults are the experiment's recipe" in first  # no validation_split given
    model.fit(data.x_train, data.y_train, epochs=1, verbose=2)
    assert "note:" not in capsys.readouterr().out  # once per process, not every fit
    monkeypatch.setattr(keras_notes, "SHOWN", set())
    model.fit(data.x_train, data.y_train, epochs=1, validation_split=0.2, split_method="keras", verbose=2)
    assert "note:" not in capsys.readouterr().out  # the user chose: nothing to say
