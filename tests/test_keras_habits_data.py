"""fit on data beyond arrays (generators, PyDataset-like objects, torch DataLoaders and Datasets, folder datasets),
steps_per_epoch and validation_steps, and a batch larger than the data: checked against Keras 3 itself."""

import numpy as np
import pytest
import torch
from PIL import Image

import cnnlab
from cnnlab.engine.inputs import InputError
from cnnlab.engine.streams import StreamError
from cnnlab.layers import Dense, Input
from habits import DIFFERS, REFUSED, habit

from keras_oracle import keras


@pytest.fixture(scope="module")
def batch():
    data = cnnlab.load_data("digits")
    return data.x_train[:48].reshape(48, -1).astype(np.float32) / 255, data.y_train[:48]


def pair(seed: int = 3):
    """A cnnlab model (64 -> 16 relu -> 10 softmax), SGD, and Keras' same model with the same initial weights."""
    inp = Input(shape=(64,))
    ours = cnnlab.Model(inputs=inp, outputs=Dense(10, activation="softmax")(Dense(16, activation="relu")(inp)),
                        seed=seed)
    ours.build((64,))
    ours.compile(optimizer=cnnlab.optimizers.SGD(0.3), loss="sparse_categorical_crossentropy")
    k_in = keras.Input(shape=(64,))
    theirs = keras.Model(k_in, keras.layers.Dense(10, activation="softmax")(
        keras.layers.Dense(16, activation="relu")(k_in)))
    theirs.set_weights(weights_of(ours))
    theirs.compile(optimizer=keras.optimizers.SGD(0.3), loss="sparse_categorical_crossentropy")
    return ours, theirs


def weights_of(model) -> list[np.ndarray]:
    state = {k: v.detach().numpy() for k, v in model.module.state_dict().items()}
    return [state["blocks.0.linear.weight"].T, state["blocks.0.linear.bias"],
            state["blocks.1.linear.weight"].T, state["blocks.1.linear.bias"]]


def assert_same_weights(ours, theirs):
    for mine, keras_weights in zip(weights_of(ours), theirs.get_weights(), strict=True):
        np.testing.assert_allclose(mine, keras_weights, rtol=1e-4, atol=1e-6)


class Batches:
    """A keras.utils.PyDataset-like object: ``len`` batches, ``[i]`` the i-th, ``on_epoch_end`` counted."""

    def __init__(self, x, y, size):
        self.x, self.y, self.size, self.ended = x, y, size, 0

    def __len__(self):
        return -(-len(self.y) // self.size)

    def __getitem__(self, index):
        part = slice(index * self.size, (index + 1) * self.size)
        return self.x[part], self.y[part]

    def on_epoch_end(self):
        self.ended += 1


class KerasBatches(keras.utils.PyDataset):
    def __init__(self, x, y, size):
        super().__init__()
        self.inner = Batches(x, y, size)

    def __len__(self):
        return len(self.inner)

    def __getitem__(self, index):
        return self.inner[index]


@habit("fit on a PyDataset", keras="fit(MyPyDataset(...), epochs=2, shuffle=False)",
       cnnlab="the same batches in the source's order, the same weights as Keras; on_epoch_end called",
       topic="Data")
def test_fit_on_a_pydataset_trains_as_keras(batch):
    x, y = batch
    ours, theirs = pair()
    source = Batches(x, y, 16)
    history = ours.fit(source, epochs=2, verbose=0, shuffle=False)  # in its order; Keras' default shuffles it
    theirs.fit(KerasBatches(x, y, 16), epochs=2, verbose=0, shuffle=False)
    assert_same_weights(ours, theirs)
    assert source.ended == 2 and len(history.history["loss"]) == 2 and "val_loss" not in history.history


class Logged(Batches):
    """Batches that note which batch each epoch asked for."""

    def __init__(self, x, y, size):
        super().__init__(x, y, size)
        self.asked = []

    def __getitem__(self, index):
        self.asked.append(index)
        return super().__getitem__(index)


@habit("a PyDataset's batch order with fit's shuffle", keras="fit(MyPyDataset(...)) shuffles the batch order each "
       "epoch (shuffle=True, the default); shuffle=False keeps it", cnnlab="the same, drawn from the model's seed "
       "(never Python's global random): a seeded run repeats", status=DIFFERS, topic="Data")
def test_a_pydataset_batch_order_is_shuffled_as_keras_shuffles_it(batch):
    x, y = batch

    def orders(shuffle):
        source = Logged(x, y, 6)  # 8 batches a pass
        pair()[0].fit(source, epochs=3, verbose=0, shuffle=shuffle)
        return [source.asked[i:i + 8] for i in range(0, 24, 8)]

    shuffled = orders(True)
    assert all(sorted(order) == list(range(8)) for order in shuffled)
    assert shuffled[0] != list(range(8)) and shuffled[0] != shuffled[1]
    assert orders(True) == shuffled  # the model's seed: the same orders again
    assert orders(False) == [list(range(8))] * 3


@habit("steps_per_epoch below a PyDataset's length", keras="fit(MyPyDataset(...), steps_per_epoch=2, epochs=3)",
       cnnlab="the same batches as Keras: an epoch goes on where the last one stopped, and is cut short where "
              "the pass ends", topic="Data")
def test_steps_per_epoch_continues_a_pass_as_keras(batch):
    x, y = batch
    ours, theirs = pair()
    source = Batches(x, y, 16)  # 3 batches a pass
    history = ours.fit(source, steps_per_epoch=2, epochs=3, verbose=0, shuffle=False)
    theirs.fit(KerasBatches(x, y, 16), steps_per_epoch=2, epochs=3, verbose=0, shuffle=False)
    assert_same_weights(ours, theirs)  # epochs of batches (0, 1), (2), (0, 1), as Keras runs them
    assert len(history.history["loss"]) == 3 and source.ended == 3


@habit("fit on a generator with steps_per_epoch", keras="fit(gen(), steps_per_epoch=3, epochs=2, "
       "validation_data=val_gen(), validation_steps=2)",
       cnnlab="the same batches and weights as Keras; validation batches read once (validation_steps of them) "
              "and scored every epoch", status=DIFFERS, topic="Data")
def test_fit_on_a_generator_trains_as_keras(batch):
    x, y = batch

    def endless():
        while True:
            for start in range(0, 48, 16):
                yield x[start:start + 16], y[start:start + 16]

    ours, theirs = pair()
    history = ours.fit(endless(), steps_per_epoch=3, epochs=2, verbose=0, validation_data=endless(),
                       validation_steps=2)
    theirs.fit(endless(), steps_per_epoch=3, epochs=2, verbose=0)
    assert_same_weights(ours, theirs)
    assert len(history.history["val_loss"]) == 2
    ours.fit(endless(), steps_per_epoch=2, epochs=1, verbose=0, shuffle=False)  # shuffle is moot for a stream


@habit("weights with a source of batches", keras="fit(MyPyDataset(...), class_weight={...}); a generator of "
       "(x, y, sample_weight)", cnnlab="the same weighted updates as Keras (cnnlab also takes class_weight with a "
       "generator or DataLoader, which Keras refuses)", topic="Data")
def test_weights_with_a_source_of_batches_train_as_keras(batch):
    x, y = batch
    weights = {0: 3.0, 5: 0.25}
    ours, theirs = pair()
    ours.fit(Batches(x, y, 16), epochs=2, verbose=0, shuffle=False, class_weight=weights)
    theirs.fit(KerasBatches(x, y, 16), epochs=2, verbose=0, shuffle=False, class_weight=weights)
    assert_same_weights(ours, theirs)
    per_image = np.linspace(0.2, 2.0, 48).astype(np.float32)

    def weighted():
        while True:
            for start in range(0, 48, 16):
                yield x[start:start + 16], y[start:start + 16], per_image[start:start + 16]

    ours, theirs = pair()
    ours.fit(weighted(), steps_per_epoch=3, epochs=1, verbose=0)
    theirs.fit(weighted(), steps_per_epoch=3, epochs=1, verbose=0)
    assert_same_weights(ours, theirs)


@habit("fit on a torch DataLoader", keras="fit(DataLoader(TensorDataset(x, y), batch_size=16))",
       cnnlab="the same weights as Keras (len(loader) steps); a map-style Dataset is batched by cnnlab, "
              "shuffled from the model's seed", topic="Data")
def test_fit_on_a_dataloader_and_a_dataset(batch):
    x, y = batch
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.from_numpy(x), torch.from_numpy(y)),
                                         batch_size=16)
    ours, theirs = pair()
    ours.fit(loader, epochs=1, verbose=0)
    theirs.fit(loader, epochs=1, verbose=0)
    assert_same_weights(ours, theirs)
    dataset = torch.utils.data.TensorDataset(torch.from_numpy(x), torch.from_numpy(y))
    first, again = pair()[0], pair()[0]
    first.fit(dataset, batch_size=8, epochs=1, verbose=0)
    again.fit(dataset, batch_size=8, epochs=1, verbose=0)
    for a, b in zip(weights_of(first), weights_of(again), strict=True):
        np.testing.assert_array_equal(a, b)  # seeded: the same shuffle


@habit("a batch larger than the data", keras="fit(x[:48], y[:48], batch_size=64)",
       cnnlab="one short batch per epoch, the same weights as Keras", topic="Data")
def test_a_batch_larger_than_the_data_trains_one_short_batch(batch):
    x, y = batch
    ours, theirs = pair()
    history = ours.fit(x, y, batch_size=64, epochs=2, verbose=0, validation_split=0)
    theirs.fit(x, y, batch_size=64, epochs=2, verbose=0, shuffle=False)
    assert_same_weights(ours, theirs)
    assert len(history.history["loss"]) == 2


@habit("a generator without steps_per_epoch", keras="runs until the generator ends",
       cnnlab="refused: give steps_per_epoch; a source that runs out mid-epoch is one clear error",
       status=REFUSED, topic="Data")
def test_generators_need_steps_and_run_out_clearly(batch):
    x, y = batch
    model = pair()[0]
    with pytest.raises(InputError, match="give steps_per_epoch"):
        model.fit((b for b in [(x, y)]), epochs=1, verbose=0)
    with pytest.raises(StreamError, match="ran out after 2 of 3 batches"):
        model.fit(iter([(x[:8], y[:8])] * 2), steps_per_epoch=3, epochs=1, verbose=0)
    with pytest.raises(InputError, match="y must not be given"):
        model.fit(Batches(x, y, 8), y, verbose=0)
    with pytest.raises(InputError, match="validation_split needs arrays"):
        model.fit(Batches(x, y, 8), validation_split=0.2, verbose=0)
    with pytest.raises(InputError, match=r"x \(batch 2\)"):
        model.fit(iter([(x[:8], y[:8]), (x[:8], y[:4])]), steps_per_epoch=2, epochs=1, verbose=0)


@habit("evaluate and predict on a generator", keras="evaluate(gen(), steps=3); predict(PyDataset)",
       cnnlab="the same results as on the arrays it yields, in its order", topic="Data")
def test_evaluate_and_predict_on_a_source_equal_the_arrays(batch):
    x, y = batch
    model = pair()[0]
    model.fit(x, y, epochs=1, verbose=0, validation_split=0)
    expected = model.evaluate(x, y)
    assert model.evaluate(Batches(x, y, 16)) == pytest.approx(expected, rel=1e-6)
    assert model.evaluate(iter(Batches(x, y, 16)[i] for i in range(3)), steps=3) == pytest.approx(expected, rel=1e-6)
    probabilities = model.predict(x)
    np.testing.assert_array_equal(model.predict(Batches(x, y, 16)), probabilities)
    np.testing.assert_array_equal(model.predict((x[i:i + 16] for i in range(0, 48, 16)), steps=2), probabilities[:32])


def write_folder(root, per_class: int = 6):
    rng = np.random.default_rng(0)
    for name, level in (("cats", 60), ("dogs", 190)):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            pixels = np.clip(rng.normal(level, 20, size=(8, 8, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(root / name / f"{i}.png")
    return root


@habit("fit on image_dataset_from_directory", keras="fit(image_dataset_from_directory(path, image_size=...))",
       cnnlab="the same: its batch size; shuffled by cnnlab from the model's seed, so a run repeats exactly",
       status=DIFFERS, topic="Data")
def test_fit_on_a_folder_dataset_is_exact(tmp_path):
    # Keras' cnnlab.utils.image_dataset_from_directory, from where it lives
    from cnnlab.data.image_dataset import image_dataset_from_directory

    folder = write_folder(tmp_path / "pets")
    dataset = image_dataset_from_directory(folder, image_size=(8, 8), batch_size=4)

    def trained():
        inp = Input(shape=(8, 8, 3))
        model = cnnlab.Model(inputs=inp, outputs=Dense(2, activation="softmax")(cnnlab.layers.Flatten()(inp)),
                             seed=5)
        model.fit(dataset, epochs=2, verbose=0, validation_data=dataset)
        return model

    first, second = trained(), trained()
    assert len(first.history.history["val_loss"]) == 2
    for a, b in zip(first.module.state_dict().values(), second.module.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert first.evaluate(dataset)[1] >= 0.5
    in_order = image_dataset_from_directory(folder, image_size=(8, 8), batch_size=4, shuffle=False)
    np.testing.assert_array_equal(first.predict(in_order), first.predict(in_order.images))


class Interrupt(cnnlab.callbacks.Callback):
    """Raises once at the start of epoch ``at`` (0-based), as a crash would stop a fit."""

    def __init__(self, at):
        super().__init__()
        self.at = at

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.at:
            raise RuntimeError("interrupted")


@habit("BackupAndRestore with a folder dataset or a PyDataset", keras="fit(ds, callbacks=[BackupAndRestore(d)]) "
       "again after a crash", cnnlab="ends with the weights of an uninterrupted fit: the folder's shuffle and a "
       "PyDataset's batch order come from the seed and the epoch's number", topic="Data")
def test_resume_is_exact_for_a_folder_and_a_pydataset(tmp_path, batch):
    from cnnlab.callbacks import BackupAndRestore
    from cnnlab.data.image_dataset import image_dataset_from_directory

    folder = image_dataset_from_directory(write_folder(tmp_path / "pets"), image_size=(8, 8), batch_size=4)

    def folder_model():
        inp = Input(shape=(8, 8, 3))
        return cnnlab.Model(inputs=inp, outputs=Dense(2, activation="softmax")(cnnlab.layers.Flatten()(inp)),
                            seed=5)

    x, y = batch
    for source, make in ((folder, folder_model), (Batches(x, y, 8), lambda: pair()[0])):
        whole = make()
        whole.fit(source, epochs=3, verbose=0)
        backup = tmp_path / "backup"
        with pytest.raises(RuntimeError, match="interrupted"):
            make().fit(source, epochs=3, verbose=0, callbacks=[BackupAndRestore(backup), Interrupt(2)])
        resumed = make()
        assert resumed.fit(source, epochs=3, verbose=0, callbacks=[BackupAndRestore(backup)]).epoch == [2]
        for a, b in zip(whole.module.state_dict().values(), resumed.module.state_dict().values(), strict=True):
            assert torch.equal(a, b)
