"""Keras habits of issue 33: the keras.io Grad-CAM recipe, against cnnlab.explain.grad_cam, on Keras itself."""

from __future__ import annotations

import numpy as np

import cnnlab
from cnnlab import explain
from cnnlab import layers as L
from habits import DIFFERS, habit

from keras_oracle import keras


def _weights():
    rng = np.random.default_rng(11)
    return (rng.normal(size=(3, 3, 2, 3)).astype(np.float32), rng.normal(0.5, 0.2, size=3).astype(np.float32),
            rng.normal(0.3, 1, size=(108, 4)).astype(np.float32), np.zeros(4, np.float32))


def _cnnlab_model(kernel, bias, dense, dense_bias) -> cnnlab.Sequential:
    import torch

    model = cnnlab.Sequential([L.Input((6, 6, 2)), L.Conv2D(3, 3, padding="same", activation="relu"), L.Flatten(),
                               L.Dense(4, activation="softmax")])
    model.build((6, 6, 2))
    with torch.no_grad():  # Keras' layouts into torch's: kernels (out, in, kh, kw), dense (out, in)
        model.module.blocks[0].conv.weight.copy_(torch.from_numpy(kernel.transpose(3, 2, 0, 1)))
        model.module.blocks[0].conv.bias.copy_(torch.from_numpy(bias))
        model.module.blocks[2].linear.weight.copy_(torch.from_numpy(dense.T))
        model.module.blocks[2].linear.bias.copy_(torch.from_numpy(dense_bias))
    return model


def _keras_io_heatmap(model, image: np.ndarray, conv_name: str) -> np.ndarray:
    """make_gradcam_heatmap of the keras.io Grad-CAM example, with torch's autograd in place of
    tf.GradientTape (Keras runs on its torch backend here): the last layer's activation removed, the
    predicted class's score differentiated, gradients pooled, ReLU, divided by the maximum."""
    import torch

    grad_model = keras.Model(model.inputs, [model.get_layer(conv_name).output, model.output])
    conv_output, preds = grad_model(torch.from_numpy(image[None]))
    class_channel = preds[:, int(torch.argmax(preds[0]))]
    (grads,) = torch.autograd.grad(class_channel.sum(), conv_output)
    pooled_grads = grads.mean(dim=(0, 1, 2))
    heatmap = torch.relu(conv_output[0] @ pooled_grads)
    return (heatmap / heatmap.max()).detach().numpy()


@habit("Grad-CAM as the keras.io example computes it",
       keras="make_gradcam_heatmap(img, model, last_conv_layer_name): a GradientTape recipe, one image",
       cnnlab="explain.grad_cam(model, images): the same heatmap, batched, resized (bilinear) to the image's size",
       status=DIFFERS, topic="Explaining")
def test_grad_cam_is_the_keras_io_heatmap():
    weights = _weights()
    inputs = keras.Input((6, 6, 2))
    features = keras.layers.Conv2D(3, 3, padding="same", activation="relu", name="conv")(inputs)
    kmodel = keras.Model(inputs, keras.layers.Dense(4, activation="softmax")(keras.layers.Flatten()(features)))
    kmodel.set_weights(list(weights))
    kmodel.layers[-1].activation = None  # as the example does: the score before the softmax
    images = np.random.default_rng(3).uniform(0, 1, (4, 6, 6, 2)).astype(np.float32)
    expected = np.stack([_keras_io_heatmap(kmodel, image, "conv") for image in images])
    assert np.isfinite(expected).all() and (expected.max(axis=(1, 2)) == 1).all()
    np.testing.assert_allclose(explain.grad_cam(_cnnlab_model(*weights), images), expected, atol=1e-5)
