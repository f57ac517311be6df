"""The comparison report's figures; each function returns a matplotlib Figure."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from cnnlab.presenters.plots import plain, subplots

if TYPE_CHECKING:
    from cnnlab.experiment.results import ModelResult

COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"]


def class_counts(audit: dict):
    """Images per class in the train, validation and test parts, from a split audit."""
    classes = list(audit["train"])
    x = np.arange(len(classes))
    fig, ax = subplots(figsize=(7, 3))
    for offset, (part, color) in enumerate(zip(("train", "validation", "test"), COLORS)):
        ax.bar(x + (offset - 1) * 0.27, [audit[part][c] for c in classes], 0.27, label=part, color=color)
    ax.set_xticks(x, [plain(name) for name in classes], rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("images")
    ax.set_ylim(0, max(max(audit[p].values()) for p in ("train", "validation", "test")) * 1.3)
    ax.legend(fontsize=8, ncol=3, loc="upper center")
    ax.set_title("Images per class", fontsize=10)
    fig.tight_layout()
    return fig


def layer_params(name: str, layers: list[tuple[str, int]]):
    """Parameters per layer as horizontal bars (layers without parameters left out)."""
    layers = [(layer, count) for layer, count in layers if count]
    fig, ax = subplots(figsize=(6, 0.35 * len(layers) + 1))
    total = sum(count for _, count in layers) or 1
    ax.barh([plain(layer) for layer, _ in layers][::-1], [count for _, count in layers][::-1], color=COLORS[0])
    for index, (_, count) in enumerate(layers[::-1]):
        ax.text(count, index, f" {count:,} ({count / total:.0%})", va="center", fontsize=8)
    ax.set_xlabel("parameters")
    ax.set_xlim(0, max(count for _, count in layers) * 1.45)
    ax.set_title(plain(f"{name}: where the parameters sit"), fontsize=10)
    fig.tight_layout()
    return fig


def learning_curves(models: list[ModelResult]):
    """Loss and accuracy per epoch, training and validation, of each model's first seed."""
    fig, axes = subplots(1, 2, figsize=(9, 3.4))
    for model, color in zip(models, COLORS):
        rows = model.first.history
        epochs = [r["epoch"] for r in rows]
        for ax, key in zip(axes, ("loss", "accuracy")):
            ax.plot(epochs, [r[key] for r in rows], "-o", color=color, ms=3, label=plain(f"{model.spec} train"))
            ax.plot(epochs, [r[f"val_{key}"] for r in rows], "--s", color=color, ms=3,
                    label=plain(f"{model.spec} validation"))
    for ax, key in zip(axes, ("loss", "accuracy")):
        ax.set_xlabel("epoch")
        ax.set_title(key, fontsize=10)
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    return fig


def per_class(models: list[ModelResult], class_names: list[str]):
    """Per-class test accuracy of every model, as grouped bars."""
    x = np.arange(len(class_names))
    width = 0.8 / len(models)
    fig, ax = subplots(figsize=(8, 3.2))
    for index, (model, color) in enumerate(zip(models, COLORS)):
        values = [model.deep.per_class_accuracy[c] or 0 for c in class_names]
        ax.bar(x + (index - (len(models) - 1) / 2) * width, values, width, label=plain(model.spec), color=color)
    ax.set_xticks(x, [plain(name) for name in class_names], rotation=30, ha="right", fontsize=8)
    ax.set_ylim(0, 1)
    ax.set_ylabel("test accuracy")
    ax.legend(fontsize=8)
    ax.set_title("Per-class test accuracy", fontsize=10)
    fig.tight_layout()
    return fig


def shift_robustness(models: list[ModelResult]):
    """Test accuracy against the shift in pixels, a line per model."""
    fig, ax = subplots(figsize=(5.5, 3.4))
    for model, color in zip(models, COLORS):
        curve = model.deep.shift_accuracy
        shifts = sorted(curve)
        ax.plot(shifts, [curve[s] for s in shifts], "-o", color=color, label=plain(model.spec))
    ax.set_xticks(sorted(models[0].deep.shift_accuracy))
    ax.set_xlabel("shift (pixels, right and down)")
    ax.set_ylabel("test accuracy")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title("Accuracy on shifted test images", fontsize=10)
    fig.tight_layout()
    return fig


def filters(name: str, kernels: np.ndarray):
    """Each kernel scaled to [0, 1] on its own and drawn as a small image."""
    count = len(kernels)
    cols = min(count, 8)
    rows = -(-count // cols)
    fig, axes = subplots(rows, cols, figsize=(cols * 0.8, rows * 0.8 + 0.4), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, kernel in zip(axes.flat, kernels):
        low, high = kernel.min(), kernel.max()
        image = (kernel - low) / (high - low + 1e-12)
        ax.imshow(image[..., 0] if image.shape[-1] != 3 else image, cmap="gray", interpolation="nearest")
    fig.suptitle(plain(f"{name}: first convolutional layer's {count} filters"), fontsize=9)
    fig.tight_layout()
    return fig


def disagreement_grid(images, labels, predicted, class_names, title: str, n: int = 10):
    """Up to ``n`` images, each titled 'true / predicted-by-the-wrong-model'."""
    shown = min(n, len(images))
    cols = max(min(shown, 5), 1)
    rows = max(-(-shown // cols), 1)
    fig, axes = subplots(rows, cols, figsize=(1.8 * cols, 2.3 * rows + 0.5), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, image, label, guess in zip(axes.flat, images[:shown], labels, predicted):
        ax.imshow(image[..., 0] if image.shape[-1] == 1 else image, cmap="gray" if image.shape[-1] == 1 else None,
                  vmin=0, vmax=255, interpolation="nearest")
        ax.set_title(plain(f"{class_names[label]}\n(not {class_names[guess]})"), fontsize=8)
    if not shown:
        axes.flat[0].text(0.5, 0.5, "none", ha="center", va="center")
    fig.suptitle(plain(title), fontsize=9)
    fig.tight_layout()
    return fig
