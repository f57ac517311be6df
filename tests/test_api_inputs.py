"""The Python API refuses arrays it would silently misuse, or converts them as a Keras user expects."""

import numpy as np
import pytest

import cnnlab
from cnnlab.engine.inputs import InputError, check_images, check_labels

TINY = [{"kind": "flatten"}, {"kind": "dense", "units": 3, "activation": "softmax"}]


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (60, 4, 4, 1), dtype=np.uint8), np.arange(60) % 3


def fitted(x, y, **options):
    model = cnnlab.Model(TINY)
    model.fit(x, y, epochs=1, verbose=0, **options)
    return model


@pytest.mark.parametrize("make_y,expect", [
    (lambda y: y[:-1], "59 labels for 60 images"),
    (lambda y: np.where(y == 2, 99, y), "label 99 does not fit the model's 3 outputs"),
    (lambda y: y + 0.5, "whole numbers"),
    (lambda y: y - 1, "must be 0 or more, got -1"),
    (lambda y: y.astype(str), "expected numbers, got an array of dtype <U"),
    (lambda y: np.eye(2)[y % 2], "one-hot rows have 2 columns but the model has 3 outputs"),
    (lambda y: np.stack([y, y], 1) * 0.5, "must be one-hot"),
    (lambda y: y[:0], "empty"),
])
def test_bad_labels_are_refused_by_name(data, make_y, expect):
    x, y = data
    with pytest.raises(InputError, match=expect.replace("(", r"\(")):
        fitted(x, make_y(y))


def test_sparse_labels_do_not_build_a_preset_head_of_100_outputs(data):
    x, y = data
    with pytest.raises(InputError, match="3 distinct labels up to 99, so 100 outputs would be built"):
        cnnlab.Model("mlp").fit(x, np.where(y == 2, 99, y), epochs=1, verbose=0)


def test_labels_in_keras_shapes_are_read_correctly(data):
    x, y = data
    as_column = check_labels(y[:, None], len(x))            # (N, 1) sparse labels, not one-hot
    assert (as_column.indices == y).all() and as_column.one_hot_width is None
    assert (check_labels(np.eye(3)[y], len(x)).indices == y).all()
    assert (check_labels(y.astype(float), len(x)).indices == y).all()


@pytest.mark.parametrize("make_x,expect", [
    (lambda x: x.astype(np.float32), "look like unscaled 0..255 pixels"),
    (lambda x: x[..., 0], "add a channel axis"),
    (lambda x: x.astype(np.int64) * 300, "pixels in 0..255, these span"),
    (lambda x: np.full(x.shape, np.nan, np.float32), "NaN"),
    (lambda x: x.astype(str), "expected numbers"),
])
def test_bad_images_are_refused_by_name(data, make_x, expect):
    x, y = data
    with pytest.raises(InputError, match=expect):
        fitted(make_x(x), y)


def test_integer_pixels_are_scaled_like_uint8(data):
    x, _ = data
    assert check_images(x.astype(np.int64)).dtype == np.uint8
    assert check_images(x / 255.0).dtype == np.float64  # floats in [0, 1] pass as they are


def test_validation_data_and_predict_shapes(data):
    x, y = data
    with pytest.raises(InputError, match=r"validation_data\[0\]: each sample must have shape \(4, 4, 1\)"):
        fitted(x, y, validation_data=(x[:, :2], y))
    with pytest.raises(InputError, match=r"validation_data\[1\]: 59 labels for 60 images"):
        fitted(x, y, validation_data=(x, y[:-1]))
    model = fitted(x, y)
    assert model.predict(x[0]).shape == (1, 3)  # one image without its batch axis
    with pytest.raises(InputError, match=r"each sample must have shape \(4, 4, 1\).*got \(5, 5, 1\)"):
        model.predict(np.zeros((2, 5, 5, 1), np.uint8))
    with pytest.raises(InputError, match="label 3 does not fit the model's 3 outputs"):
        model.evaluate(x, np.full(len(x), 3))


def test_unknown_fit_argument_names_the_valid_ones(data):
    x, y = data
    with pytest.raises(InputError, match="unknown argument 'callback'; fit takes x, y, batch_size"):
        fitted(x, y, callback=[])


@pytest.mark.parametrize("options,expect", [
    ({"validation_data": "labels"}, "expected a pair"),
    ({"validation_y": lambda y: np.full(len(y), 99)}, "validation_data\\[1\\]: label 99 does not fit the model's 3"),
    ({"validation_y": lambda y: np.eye(2)[y % 2]}, "validation_data\\[1\\]: one-hot rows have 2 columns"),
    ({"batch_size": 0}, "batch_size must be a positive integer, got 0"),
    ({"epochs": "2"}, "epochs must be a positive integer, got '2'"),
])
def test_fit_checks_validation_labels_and_sizes_before_the_first_build(data, options, expect):
    from cnnlab.errors import CnnlabError

    x, y = data
    if "validation_y" in options:
        options = {"validation_data": (x[:10], options.pop("validation_y")(y[:10]))}
    with pytest.raises(CnnlabError, match=expect):
        cnnlab.Model(TINY).fit(x, y, verbose=0, **options)  # a new model: built inside this fit
    with pytest.raises(InputError, match="batch_size must be a positive integer"):
        fitted(x, y).predict(x, batch_size=0)
