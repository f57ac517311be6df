"""Honest validation splits, and the audit that shows how they were made."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from cnnlab.data.dataset import Dataset, DatasetError

METHODS = ("stratified", "keras")


def stratified_holdout(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded per-class shuffle; ``round(fraction * count)`` of each class held out. Sorted indices.

    Not scikit-learn's ``train_test_split(stratify=...)``: that refuses a class with one image, a
    fraction of 0 and a held-out part smaller than the number of classes (all kept here, the small
    class in training), and picks other indices, while runs recompute their split from the method
    and seed on ``evaluate`` and ``--resume``. See docs/dependencies.md.
    """
    rng = np.random.default_rng(seed)
    held = []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        held.append(rng.permutation(members)[: int(round(fraction * len(members)))])
    held_out = np.sort(np.concatenate(held)) if held else np.zeros(0, np.int64)
    keep = np.setdiff1d(np.arange(len(labels)), held_out)
    return keep, held_out


def keras_tail(count: int, fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """Keras' ``validation_split``: the last fraction of the samples, before any shuffling."""
    split_at = int(np.floor(count * (1.0 - fraction)))
    return np.arange(split_at), np.arange(split_at, count)


@dataclass
class Split:
    """Indices into the training part, and the audit a user should see."""

    train_idx: np.ndarray
    val_idx: np.ndarray
    method: str
    description: str
    warnings: list[str] = field(default_factory=list)

    def audit(self, dataset: Dataset) -> dict:
        """Images per class in train / validation / test, and how the split was made."""
        y = dataset.y_train
        return {
            "method": self.method,
            "description": self.description,
            "train": dataset.per_class(y[self.train_idx]),
            "validation": dataset.per_class(y[self.val_idx]),
            "test": dataset.per_class(dataset.y_test),
            "warnings": list(self.warnings),
        }


def validation_split(dataset: Dataset, fraction: float = 0.2, method: str = "stratified",
                     seed: int = 0) -> Split:
    """Hold out ``fraction`` of the dataset's training part for validation."""
    return split_labels(dataset.y_train, dataset.class_names, fraction, method, seed)


def split_labels(labels: np.ndarray, class_names: list[str], fraction: float = 0.2,
                 method: str = "stratified", seed: int = 0) -> Split:
    """Hold out ``fraction`` of samples with these labels; warn if a class leaves training."""
    if method not in METHODS:
        raise DatasetError(f"unknown split method '{method}'; expected one of {', '.join(METHODS)}")
    if not 0 <= fraction < 1:
        raise DatasetError(f"validation fraction must be in [0, 1), got {fraction}")
    if method == "keras":
        train_idx, val_idx = keras_tail(len(labels), fraction)
        description = f"Keras rule: the last {fraction:.0%} of the training part, before shuffling"
    else:
        train_idx, val_idx = stratified_holdout(labels, fraction, seed)
        description = f"stratified: a seeded shuffle (seed {seed}) holding out {fraction:.0%} of each class"
    split = Split(train_idx, val_idx, method, description)
    present = set(np.unique(labels[train_idx]).tolist())
    missing = [name for i, name in enumerate(class_names) if i not in present and (labels == i).any()]
    if missing:
        split.warnings.append(f"classes missing from training after the split: {', '.join(missing)} "
                              "(the data is sorted by class; use the stratified split)")
    return split


def format_audit(audit: dict) -> str:
    """A small table of images per class per part, with the split's description."""
    classes = list(audit["train"])
    width = max(len("class"), *map(len, classes))
    lines = [f"split: {audit['description']}",
             f"{'class'.ljust(width)}  {'train':>7}  {'val':>7}  {'test':>7}"]
    for name in classes:
        lines.append(f"{name.ljust(width)}  {audit['train'][name]:>7,}  "
                     f"{audit['validation'][name]:>7,}  {audit['test'][name]:>7,}")
    totals = [sum(audit[part].values()) for part in ("train", "validation", "test")]
    lines.append(f"{'total'.ljust(width)}  {totals[0]:>7,}  {totals[1]:>7,}  {totals[2]:>7,}")
    lines += [f"warning: {text}" for text in audit["warnings"]]
    return "\n".join(lines)
