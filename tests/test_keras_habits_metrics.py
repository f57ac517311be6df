"""Keras' metrics in compile(metrics=[...]): top-k accuracy, precision, recall, F1 and Keras' metric
objects, checked against Keras' own metrics on the same predictions and Keras' own History keys."""

import csv
import re

import numpy as np
import pytest

import cnnlab
from cnnlab import metrics
from cnnlab.engine.config import ConfigError
from cnnlab.engine.metric_counts import Confusion, FBeta, MetricTally, TopK
from cnnlab.utils import to_categorical
from habits import REFUSED, WORKS, habit

from fixtures import small_model
from keras_oracle import keras

TOPIC = "Metrics"


def predictions(rows=200, classes=10, seed=0):
    """Softmax rows with some near-ties, and one-hot labels: what a classifier gives a metric."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(rows, classes)) * 2
    y_pred = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    labels = rng.integers(0, classes, rows)
    return labels, np.eye(classes, dtype=np.float32)[labels], y_pred.astype(np.float32)


def keras_result(metric, y_true, y_pred):
    metric.update_state(y_true, y_pred)
    return np.asarray(keras.ops.convert_to_numpy(metric.result()))


PAIRS = [  # (cnnlab's, Keras') metric objects with the same arguments
    (lambda m: m.TopKCategoricalAccuracy(), True),
    (lambda m: m.TopKCategoricalAccuracy(k=3, name="top3"), True),
    (lambda m: m.Precision(), True),
    (lambda m: m.Precision(thresholds=0.2), True),
    (lambda m: m.Precision(top_k=2), True),
    (lambda m: m.Precision(class_id=3), True),
    (lambda m: m.Recall(), True),
    (lambda m: m.Recall(thresholds=0.1, class_id=1), True),
    (lambda m: m.Recall(top_k=3), True),
    (lambda m: m.F1Score(), True),
    (lambda m: m.F1Score(average="micro"), True),
    (lambda m: m.F1Score(average="macro"), True),
    (lambda m: m.F1Score(average="weighted"), True),
    (lambda m: m.F1Score(average="macro", threshold=0.3), True),
    (lambda m: m.FBetaScore(average="weighted", beta=2.0), True),
    (lambda m: m.SparseTopKCategoricalAccuracy(k=2), False),
]


@habit("Keras' metric objects used alone", keras="m = Precision(); m.update_state(y, p); m.result()",
       cnnlab="the same values as Keras' (top-k, precision, recall, F1/F-beta, every average)", topic=TOPIC)
@pytest.mark.parametrize("make, one_hot", PAIRS)
def test_metric_objects_give_keras_values(make, one_hot):
    labels, y_true, y_pred = predictions()
    ours, theirs = make(metrics), make(keras.metrics)
    assert re.fullmatch(re.escape(ours.name) + r"(_\d+)?", theirs.name)  # Keras numbers a second one: precision_1
    for part in (slice(0, 120), slice(120, 200)):  # two batches: the counts add up, as Keras' state does
        ours.update_state((y_true if one_hot else labels)[part], y_pred[part])
        theirs.update_state((y_true if one_hot else labels)[part], y_pred[part])
    np.testing.assert_allclose(np.asarray(ours.result()), keras.ops.convert_to_numpy(theirs.result()),
                               rtol=1e-5, atol=1e-6)
    ours.reset_state()
    assert ours.result() == 0.0


@habit("top_k_categorical_accuracy as a function", keras="keras.metrics.top_k_categorical_accuracy(y, p, k=3)",
       cnnlab="the same per-sample values; in compile, the function's name in the logs", topic=TOPIC)
def test_top_k_functions_match_keras():
    labels, y_true, y_pred = predictions()
    np.testing.assert_array_equal(metrics.top_k_categorical_accuracy(y_true, y_pred, k=3),
                                  keras.ops.convert_to_numpy(keras.metrics.top_k_categorical_accuracy(
                                      y_true, y_pred, k=3)))
    np.testing.assert_array_equal(metrics.sparse_top_k_categorical_accuracy(labels, y_pred),
                                  keras.ops.convert_to_numpy(keras.metrics.sparse_top_k_categorical_accuracy(
                                      labels, y_pred)))


COMPILED = ["accuracy", "top_k_categorical_accuracy", "precision", "recall", "f1_score"]


def keras_history_keys(data, compiled, one_hot=True):
    """What Keras' own History holds after one epoch with these metrics, on a slice of the same data."""
    model = keras.Sequential([keras.Input(data.image_shape), keras.layers.Flatten(),
                              keras.layers.Dense(10, activation="softmax")])
    model.compile("adam", "categorical_crossentropy" if one_hot else "sparse_categorical_crossentropy",
                  metrics=compiled)
    x = data.x_train[:200].astype("float32") / 255
    y = to_categorical(data.y_train[:200], 10) if one_hot else data.y_train[:200]
    return set(model.fit(x, y, epochs=1, verbose=0, validation_split=0.25).history)


@habit("compile(metrics=['accuracy', 'top_k_categorical_accuracy', 'precision', 'recall', 'f1_score'])",
       keras="history.history has each name and its val_ twin", cnnlab="the same keys; the validation values "
       "are Keras' metrics on the model's own predictions", topic=TOPIC)
def test_compiled_metrics_log_keras_names_and_values(digits):
    model = small_model(digits)
    model.compile(cnnlab.optimizers.Adam(learning_rate=0.01), "categorical_crossentropy", metrics=COMPILED)
    y_val = to_categorical(digits.y_test, 10)
    history = model.fit(digits.x_train, to_categorical(digits.y_train, 10), epochs=2, verbose=0,
                        validation_data=(digits.x_test, y_val)).history
    assert set(history) == keras_history_keys(digits, COMPILED)
    assert history["f1_score"][0].shape == (10,) and history["f1_score"][0].dtype == np.float32  # as Keras'
    y_pred = model.predict(digits.x_test)
    for name in COMPILED[1:]:  # the last epoch's validation scores: Keras' metric on the same predictions
        expected = keras_result(keras.metrics.get(name), y_val, y_pred)
        np.testing.assert_allclose(history[f"val_{name}"][-1], expected, rtol=1e-5, atol=1e-6, err_msg=name)
    evaluated = model.evaluate(digits.x_test, y_val, return_dict=True)
    assert list(evaluated) == ["loss", *COMPILED]  # Keras' order: loss, then compile's metrics
    np.testing.assert_allclose(evaluated["precision"], history["val_precision"][-1], rtol=1e-6)


@habit("metric objects with names in compile", keras="metrics=[TopKCategoricalAccuracy(k=3, name='top3'), "
       "F1Score(average='macro')]", cnnlab="logged as top3, val_top3, f1_score, val_f1_score", topic=TOPIC)
def test_metric_objects_in_compile_are_logged_by_their_names(digits, tmp_path):
    compiled = [metrics.TopKCategoricalAccuracy(k=3, name="top3"), metrics.F1Score(average="macro"),
                metrics.sparse_top_k_categorical_accuracy, metrics.F1Score(name="per_class")]
    model = small_model(digits)
    model.compile("adam", "sparse_categorical_crossentropy", metrics=compiled)
    log = tmp_path / "log.csv"
    history = model.fit(digits.x_train, digits.y_train, epochs=1, verbose=0,
                        callbacks=[cnnlab.callbacks.CSVLogger(log)]).history
    rows = list(csv.DictReader(log.open()))
    assert rows[0]["val_per_class"].startswith("[") and len(rows[0]["val_per_class"].split(",")) == 10
    assert float(rows[0]["top3"]) == pytest.approx(history["top3"][0])
    del history["per_class"], history["val_per_class"]
    keras_compiled = [keras.metrics.SparseTopKCategoricalAccuracy(k=3, name="top3"),
                      keras.metrics.F1Score(average="macro"), keras.metrics.sparse_top_k_categorical_accuracy]
    expected = keras_history_keys(digits, keras_compiled[:1] + keras_compiled[2:], one_hot=False)
    assert set(history) - {"f1_score", "val_f1_score", "accuracy", "val_accuracy"} == expected - {"accuracy"}
    assert {"f1_score", "val_f1_score", "accuracy"} <= set(history)  # cnnlab always reports accuracy
    assert 0 < history["val_top3"][0] <= 1 and isinstance(history["val_f1_score"][0], float)


def test_training_scores_are_counted_over_the_epochs_batches(digits):
    """The training side counts each batch as it is trained: with a learning rate too small to move the
    weights, the epoch's scores equal Keras' metrics on the final model's predictions of the same images."""
    model = small_model(digits)
    model.compile(cnnlab.optimizers.SGD(learning_rate=1e-12), "sparse_categorical_crossentropy",
                  metrics=["precision", metrics.F1Score(average="weighted"), metrics.TopKCategoricalAccuracy(k=2)])
    history = model.fit(digits.x_train, digits.y_train, epochs=1, verbose=0, validation_split=0.0).history
    y_true, y_pred = to_categorical(digits.y_train, 10), model.predict(digits.x_train)
    for name, oracle in (("precision", keras.metrics.Precision()),
                         ("f1_score", keras.metrics.F1Score(average="weighted")),
                         ("top_k_categorical_accuracy", keras.metrics.TopKCategoricalAccuracy(k=2))):
        np.testing.assert_allclose(history[name][0], keras_result(oracle, y_true, y_pred), rtol=1e-5, err_msg=name)


def test_counting_reads_nothing_back_to_the_host(monkeypatch):
    """No per-step host sync: adding a batch to the tally never turns a tensor into a Python value."""
    import torch

    tally = MetricTally([TopK("t"), Confusion("p", "precision"), FBeta("f", "macro")], 10, torch.device("cpu"))
    logits, target = torch.randn(64, 10), torch.randint(0, 10, (64,))

    def refuse(*_args, **_kwargs):
        raise AssertionError("a host sync while counting")

    for name in ("item", "tolist", "cpu", "numpy", "__bool__", "__float__", "__int__"):
        monkeypatch.setattr(torch.Tensor, name, refuse)
    tally.add(logits, target)
    tally.add(logits, target)
    monkeypatch.undo()
    assert tally.values()["t"] == pytest.approx(float((torch.topk(logits, 5).indices == target[:, None]).any(1)
                                                      .double().mean()))


@habit("metrics cnnlab does not count", keras="metrics=['auc'], metrics=[keras.metrics.Accuracy()]",
       cnnlab="refused at compile, naming the metrics it counts (Accuracy() compares labels with probabilities "
       "value by value: about 0 in Keras)", status=REFUSED, topic=TOPIC)
def test_unsupported_metrics_are_refused_at_compile(digits):
    model = small_model(digits)
    for bad, message in ((["auc"], "unsupported metric 'auc'"),
                         ([metrics.Accuracy()], "use metrics=\\['accuracy'\\]"),
                         (["precision", metrics.Precision()], "'precision' would be logged twice"),
                         (["accuracy", "acc"], "are the same accuracy")):
        with pytest.raises(ConfigError, match=message):
            model.compile("adam", "sparse_categorical_crossentropy", metrics=bad)
    with pytest.raises(ConfigError, match="a list of thresholds is not supported"):
        metrics.Precision(thresholds=[0.3, 0.5])


@habit("a Keras metric name in EarlyStopping's monitor", keras="EarlyStopping(monitor='val_precision')",
       cnnlab="the same: judged as Keras judges it (higher is better)", status=WORKS, topic=TOPIC)
def test_monitoring_a_compiled_metric(digits):
    stop = cnnlab.callbacks.EarlyStopping(monitor="val_precision", patience=0)
    assert stop.mode == "max"
    model = small_model(digits)
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["precision"])
    history = model.fit(digits.x_train, digits.y_train, epochs=2, verbose=0, callbacks=[stop]).history
    assert len(history["val_precision"]) >= 1


DDP_SCRIPT = """
import json, sys
import cnnlab
from cnnlab.engine import distributed
from cnnlab.layers import Dense, Flatten, Input
distributed.setup()
data = cnnlab.load_data("digits")
inp = Input(shape=data.image_shape)
model = cnnlab.Model(inputs=inp, outputs=Dense(10, activation="softmax")(Flatten()(inp)), seed=0, device="cpu")
model.compile("adam", "sparse_categorical_crossentropy",
              metrics=["accuracy", "precision", "recall", cnnlab.metrics.F1Score(average="macro"),
                       cnnlab.metrics.TopKCategoricalAccuracy(k=2)])
history = model.fit(data.x_train, data.y_train, epochs=1, verbose=0).history
if distributed.rank() == 0:
    print(json.dumps(history))
"""


def test_metrics_over_two_processes_count_the_whole_epoch(tmp_path):
    """Under torchrun each process counts its part of every batch and of the validation set; the counts
    are added up once per epoch, so the scores are the whole set's, as one process scores it."""
    import json
    import subprocess
    import sys

    from test_distributed import _env, finish, launch

    script = tmp_path / "fit.py"
    script.write_text(DDP_SCRIPT)
    results = finish(launch([str(script)], tmp_path, world=2))
    assert all(code == 0 for code, _, _ in results), [err[-2000:] for _, _, err in results]
    together = json.loads(results[0][1])
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=_env(), capture_output=True, text=True,
                          timeout=240)
    assert done.returncode == 0, done.stderr[-2000:]
    alone = json.loads(done.stdout)
    assert set(together) == set(alone) and "val_precision" in alone
    for key in alone:  # equal up to the order of float additions
        np.testing.assert_allclose(together[key], alone[key], rtol=1e-5, err_msg=key)


def test_an_interrupted_fit_with_metrics_resumes_them(digits, tmp_path):
    """BackupAndRestore's checkpoint holds each epoch's metric scores (checked when read back): the resumed
    fit's scores equal the uninterrupted fit's."""
    compiled = ["accuracy", "precision", metrics.F1Score()]

    def fit(callbacks):
        model = small_model(digits, seed=5)
        model.compile("adam", "sparse_categorical_crossentropy", metrics=compiled)
        return model.fit(digits.x_train, digits.y_train, epochs=3, verbose=0, callbacks=callbacks).history

    class Interrupt(cnnlab.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 2:
                raise RuntimeError("interrupted")

    whole = fit([])
    with pytest.raises(RuntimeError, match="interrupted"):
        fit([cnnlab.callbacks.BackupAndRestore(tmp_path), Interrupt()])
    resumed = fit([cnnlab.callbacks.BackupAndRestore(tmp_path)])
    assert resumed["val_precision"] == whole["val_precision"][2:]
    np.testing.assert_array_equal(resumed["val_f1_score"][0], whole["val_f1_score"][2])


def test_the_notebook_table_leaves_per_class_scores_out(digits):
    model = small_model(digits)
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy", "f1_score", "recall"])
    table = model.fit(digits.x_train, digits.y_train, epochs=1, verbose=0)._repr_html_()
    assert "<th>val_recall</th>" in table and "f1_score" not in table


def test_a_metric_named_by_the_user_is_judged_as_rising(digits):
    """Keras' 'auto' asks the compiled metric for its direction: a top-k accuracy named 'top3' rises."""
    stop = cnnlab.callbacks.EarlyStopping(monitor="val_top3", patience=0)
    keep = cnnlab.callbacks.ModelCheckpoint("unused.cnnlab", monitor="val_loss", save_best_only=True)
    model = small_model(digits)
    model.compile("adam", "sparse_categorical_crossentropy", metrics=[metrics.TopKCategoricalAccuracy(3, name="top3")])
    stop.set_model(model)
    keep.set_model(model)
    assert (stop.mode, keep.mode) == ("max", "min")
    assert stop.best == -np.inf and stop.watch.improves(0.5) and not stop.watch.improves(0.4)


@habit("a compiled metric in ModelCheckpoint's file name", keras="ModelCheckpoint('m-{epoch:02d}-{val_precision:.3f}"
       ".keras', monitor='val_precision', save_best_only=True)", cnnlab="the same (its default names; a name "
       "given with name= is not known before fit and is refused, as a typo is)", status=WORKS, topic=TOPIC)
def test_checkpoint_names_a_compiled_metric(digits, tmp_path):
    model = small_model(digits)
    model.compile(cnnlab.optimizers.Adam(learning_rate=0.01), "sparse_categorical_crossentropy",
                  metrics=["precision"])
    keep = cnnlab.callbacks.ModelCheckpoint(str(tmp_path / "m-{epoch:02d}-{val_precision:.3f}.cnnlab"),
                                            monitor="val_precision", save_best_only=True)
    history = model.fit(digits.x_train, digits.y_train, epochs=2, verbose=0, callbacks=[keep]).history
    best = max(range(2), key=lambda epoch: history["val_precision"][epoch])  # the first of equals
    assert (tmp_path / f"m-{best + 1:02d}-{history['val_precision'][best]:.3f}.cnnlab").is_file()
    with pytest.raises(ConfigError, match="names 'val_top3'"):
        cnnlab.callbacks.ModelCheckpoint(str(tmp_path / "m-{val_top3}.cnnlab"))
