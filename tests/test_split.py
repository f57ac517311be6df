"""The stratified split: its exact indices are part of every recorded run, and small classes are kept."""

import hashlib

import numpy as np

from cnnlab.data import load_dataset, validation_split
from cnnlab.data.split import split_labels, stratified_holdout

# sha256 of the validation indices (little-endian int64) of digits' training part, 20%, per seed.
# `evaluate --split val|train` and `train --resume` recompute a run's split from its method and seed,
# so if these change, every recorded run silently gets another validation part: keep them.
DIGITS_VALIDATION = {0: "5a151b24f53f723c412e840519c158b7735fbb34ab4606efe9e30605106e6939",
                     7: "ab704cc3cb669181b389345fb252f383fa678f7d67e1b1a1a45532e2936555ee"}


def test_the_digits_split_of_recorded_runs_never_changes():
    data = load_dataset("digits")
    for seed, digest in DIGITS_VALIDATION.items():
        split = validation_split(data, 0.2, seed=seed)
        assert len(split.val_idx) == 288 and len(split.train_idx) == 1437 - 288
        assert hashlib.sha256(split.val_idx.astype("<i8").tobytes()).hexdigest() == digest
    assert validation_split(data, 0.2, seed=0).val_idx[:8].tolist() == [8, 10, 15, 16, 18, 19, 22, 24]


def test_each_class_holds_out_its_rounded_share():
    labels = np.repeat(np.arange(4), [10, 7, 3, 2])
    keep, held = stratified_holdout(labels, 0.2, seed=1)
    assert np.bincount(labels[held], minlength=4).tolist() == [2, 1, 1, 0]  # round(2.0, 1.4, 0.6, 0.4)
    assert np.array_equal(np.sort(np.concatenate([keep, held])), np.arange(len(labels)))
    assert np.all(np.diff(held) > 0) and np.all(np.diff(keep) > 0)


def test_a_class_with_one_image_stays_in_training():
    """scikit-learn's stratified train_test_split refuses this; cnnlab keeps the image for training."""
    labels = np.array([0] * 9 + [1] * 9 + [2])
    split = split_labels(labels, ["a", "b", "c"], 0.2, seed=0)
    assert 18 in split.train_idx and 18 not in split.val_idx
    assert np.bincount(labels[split.val_idx], minlength=3).tolist() == [2, 2, 0]
    assert split.warnings == []


def test_fractions_too_small_for_a_class_hold_out_nothing():
    """scikit-learn refuses a validation part smaller than the number of classes, and a fraction of 0."""
    labels = np.repeat(np.arange(4), 10)
    for fraction in (0.0, 0.04):
        split = split_labels(labels, list("abcd"), fraction, seed=0)
        assert split.val_idx.tolist() == [] and split.train_idx.tolist() == list(range(40))
