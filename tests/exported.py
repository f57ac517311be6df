"""What the export tests share: networks with random weights, and the exported files, loaded and fed.

Every parameter and batchnorm statistic is drawn at random, so that a wrong layout shows in the
predictions: a fresh Keras initialisation has zero biases, unit variances and zero means, and a
kernel in the wrong layout, a missing permutation or swapped batchnorm statistics could hide
behind them. The images fed are other than the ones an export checks itself with.
"""

import importlib.util

import numpy as np
import pytest
import torch

from cnnlab.export.network import Network


def randomise(network: Network, seed: int = 7) -> Network:
    """The network with every parameter and batchnorm statistic drawn at random (seeded), kernels
    scaled by their fan-in so that the probabilities stay away from 0 and 1 (where they would hide
    differences)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in network.model.state_dict().items():
            if not tensor.is_floating_point():
                continue
            values = torch.rand(tensor.shape, generator=generator)
            if tensor.dim() > 1:  # a kernel: uniform with variance 1 / fan-in
                tensor.copy_((values * 2 - 1) * (3 / tensor[0].numel()) ** 0.5)
            elif name.endswith(("running_var", "weight")):  # batchnorm's variance and gamma
                tensor.copy_(values + 0.5)
            else:  # biases, beta, moving means
                tensor.copy_((values - 0.5) * 0.2)
    return network


def load_file(path):
    """Import a generated file by its path, as a user would."""
    spec = importlib.util.spec_from_file_location(f"exported_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def fresh_images(network: Network, count: int = 3) -> np.ndarray:
    """Images other than the ones the export checked itself with."""
    return np.random.default_rng(99).random((count, *network.torch_input_shape), dtype=np.float32)


def as_numpy(tensor) -> np.ndarray:
    """A Keras output as numpy (keras.ops.convert_to_numpy warns on torch tensors under numpy 2)."""
    return tensor.detach().cpu().numpy() if hasattr(tensor, "detach") else np.asarray(tensor)


def channels_last(images: np.ndarray) -> np.ndarray:
    return images.transpose(0, 2, 3, 1) if images.ndim == 4 else images


@pytest.fixture(scope="module")
def one_thread():
    """The networks and batches are tiny; on a shared 2-core machine, two threads mostly wait on each other."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
