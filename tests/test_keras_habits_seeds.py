"""Seeds as Keras means them: unseeded runs differ, ``set_random_seed`` makes what follows repeat,
``Model(seed=)`` repeats one model, the seed a run used is kept, and the user's global generators
are never reseeded by ``fit``, ``build`` or ``load_model``."""

import os
import random

import numpy as np
import pytest
import torch

import cnnlab
from cnnlab import runs
from cnnlab.engine import seeds
from cnnlab.engine.config import ConfigError, TrainConfig
from cnnlab.utils import set_random_seed
from habits import DIFFERS, habit

SEEDS = "Seeds"


def train(data, **options):
    """A small MLP, one epoch on 400 digits (dropout, shuffling and a validation split all draw)."""
    model = cnnlab.Model("mlp", device="cpu", **options)
    history = model.fit(data.x_train[:400], data.y_train[:400], epochs=1, verbose=0)
    return model, history


def weights(model):
    return [tensor.clone() for tensor in model.module.state_dict().values()]


def same(first, second) -> bool:
    return all(torch.equal(a, b) for a, b in zip(weights(first), weights(second)))


def global_draws():
    return random.random(), float(np.random.rand()), float(torch.rand(1))


def keras_initial_kernels(seed=None):
    """A Keras Dense kernel as initialised, after ``keras.utils.set_random_seed(seed)`` when given;
    None where Keras 3 is not installed (the oracle's half of a test is then skipped)."""
    os.environ.setdefault("KERAS_BACKEND", "torch")
    try:
        import keras
    except ImportError:
        return None
    if seed is not None:
        keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    return model.get_weights()[0]


@habit("models made without a seed differ", keras="three models built and fit in a loop: three results",
       cnnlab="the same: each model draws its own seed (model.seed), from the OS's entropy", topic=SEEDS)
def test_three_unseeded_models_trained_in_a_loop_differ(digits, monkeypatch):
    monkeypatch.setattr(seeds, "_stream", None)  # as in a user's session: no set_random_seed called
    trained = [train(digits) for _ in range(3)]
    assert len({model.seed for model, _ in trained}) == 3
    losses = {history.history["val_loss"][0] for _, history in trained}
    assert len(losses) == 3
    assert not same(trained[0][0], trained[1][0]) and not same(trained[1][0], trained[2][0])
    keras_kernels = keras_initial_kernels(), keras_initial_kernels()
    assert keras_kernels[0] is None or not np.array_equal(*keras_kernels)  # Keras: the same


@habit("fit leaves the global generators alone", keras="np.random.rand() after fit: what it would have been",
       cnnlab="the same (fit, build and load_model draw from the run's seed and give the generators back)",
       topic=SEEDS)
def test_fit_build_and_load_model_leave_the_global_generators_alone(digits, tmp_path):
    def draws_after(action):
        random.seed(11)
        np.random.seed(11)
        torch.manual_seed(11)
        action()
        return global_draws()

    untouched = draws_after(lambda: None)
    model, _ = train(digits)
    path = model.save(tmp_path / "m.cnnlab")
    assert draws_after(lambda: train(digits)) == untouched
    assert draws_after(lambda: train(digits, seed=5)) == untouched
    assert draws_after(lambda: cnnlab.Model("mlp", seed=2).build((8, 8, 1), 10)) == untouched
    assert draws_after(lambda: cnnlab.load_model(path)) == untouched


@habit("set_random_seed makes what follows repeat", keras="keras.utils.set_random_seed(1)",
       cnnlab="cnnlab.utils.set_random_seed(1): the same (Python's, numpy's and torch's generators, and the "
              "seeds models draw)", topic=SEEDS)
def test_set_random_seed_makes_two_runs_equal(digits, monkeypatch):
    monkeypatch.setattr(seeds, "_stream", None)
    runs_ = []
    for _ in range(2):
        set_random_seed(7)
        (first, history), (second, _) = train(digits), train(digits)
        runs_.append((first, history, second, global_draws()))
    (a, history_a, b, draws_a), (c, history_c, d, draws_c) = runs_
    assert history_a.history == history_c.history and same(a, c) and same(b, d)
    assert a.seed != b.seed and not same(a, b)  # two models after one call still differ from each other
    assert draws_a == draws_c  # it seeded the global generators, as Keras' does
    keras_kernels = keras_initial_kernels(7), keras_initial_kernels(7)
    assert keras_kernels[0] is None or np.array_equal(*keras_kernels)  # Keras: the same
    with pytest.raises(ConfigError, match="seed must be an integer"):
        set_random_seed("7")


@habit("a seed repeats one model", keras="no Model(seed=); layers take seed=",
       cnnlab="Model(seed=3): its initial weights, dropout, shuffling and validation split repeat",
       status=DIFFERS, topic=SEEDS)
def test_the_same_model_seed_twice_gives_equal_runs(digits):
    (first, history), (second, again) = train(digits, seed=3), train(digits, seed=3)
    assert first.seed == second.seed == 3 and history.seed == 3
    assert history.history == again.history and same(first, second)
    with pytest.raises(ConfigError, match="seed must be an integer"):
        cnnlab.Model("mlp", seed=-1)


@habit("the seed of an unseeded run is kept", keras="not kept: an unseeded run cannot be repeated",
       cnnlab="model.seed and history.seed: Model(seed=model.seed) repeats the run exactly", status=DIFFERS,
       topic=SEEDS)
def test_the_recorded_seed_repeats_an_unseeded_run(digits, monkeypatch):
    monkeypatch.setattr(seeds, "_stream", None)
    model, history = train(digits)
    assert isinstance(model.seed, int) and history.seed == model.seed
    again, repeated = train(digits, seed=history.seed)
    assert repeated.history == history.history and same(model, again)


def test_model_seed_0_is_the_command_lines_default(digits, tmp_path):
    """`cnnlab train` keeps its documented seed 0, and Model(seed=0) gives its numbers."""
    assert TrainConfig().seed == 0
    run = runs.train("mlp", "digits", TrainConfig(epochs=1, device="cpu"), out=tmp_path, name="r")
    model = cnnlab.Model("mlp", device="cpu", seed=0)
    history = model.fit(digits.x_train, digits.y_train, epochs=1, verbose=0)
    assert history.history["val_loss"] == [row.val_loss for row in run.history]
