"""The comparison report's figures; each function returns a matplotlib Figure made without pyplot.

They are drawn for a page that may be 390 px wide: about 4.5 inches at 120 dpi with text
of 10 to 12 points, so a phone shrinks them by at most a third and ticks stay 11 px tall;
legends sit outside the axes (they never cover data), epoch ticks are integers, accuracies
percentages. A figure with nothing to show is never drawn: the report says so in words
instead, and these functions refuse empty input.
"""

from __future__ import annotations

import functools

import numpy as np
from matplotlib import rc_context
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter, MaxNLocator, PercentFormatter

from cnnlab.presenters.plots import plain, subplots

COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"]
STYLE = {"font.size": 11, "axes.titlesize": 12, "axes.labelsize": 11, "xtick.labelsize": 10,
         "ytick.labelsize": 10, "legend.fontsize": 10, "axes.spines.top": False, "axes.spines.right": False,
         "figure.titlesize": 12}
PERCENT = PercentFormatter(1.0, decimals=0)
THOUSANDS = FuncFormatter(lambda value, _: f"{value:,.0f}")


def styled(draw):
    """Draw with the report's text sizes, read when each artist is made (pyplot's global state untouched)."""
    @functools.wraps(draw)
    def wrapper(*args, **kwargs):
        with rc_context(STYLE):
            return draw(*args, **kwargs)
    return wrapper


def _figure(figsize: tuple[float, float], rows: int = 1, cols: int = 1, **options):
    fig, axes = subplots(rows, cols, figsize=figsize, **options)
    fig.set_layout_engine("constrained")  # makes room for legends placed outside the axes
    return fig, axes


def _tick_names(ax, names: list[str], fontsize: float | None = None) -> None:
    long = max(map(len, names)) > 3  # names longer than a digit or two would run into each other unrotated
    ax.set_xticks(range(len(names)), [plain(name) for name in names], rotation=45 if long else 0,
                  ha="right" if long else "center", rotation_mode="anchor", fontsize=fontsize)


@styled
def samples(images: np.ndarray, labels: np.ndarray, class_names: list[str], title: str, n: int = 10):
    """``n`` images picked at random (seed 0, so the report is the same each time), titled with their class."""
    if not len(images):
        raise ValueError("no images to show")
    picks = np.random.default_rng(0).choice(len(images), size=min(n, len(images)), replace=False)
    cols = min(len(picks), 5)
    rows = -(-len(picks) // cols)
    fig, axes = _figure((0.9 * cols, 1.1 * rows + 0.35), rows, cols, squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, index in zip(axes.flat, picks):
        _show(ax, images[index])
        ax.set_title(plain(class_names[labels[index]]), fontsize=10)
    fig.suptitle(plain(title))
    return fig


def _show(ax, image: np.ndarray) -> None:
    gray = image.shape[-1] == 1
    ax.imshow(image[..., 0] if gray else image, cmap="gray" if gray else None, vmin=0, vmax=255,
              interpolation="nearest")


@styled
def class_counts(audit: dict):
    """Images per class in the train, validation and test parts, from a split audit."""
    classes = list(audit["train"])
    x = np.arange(len(classes))
    fig, ax = _figure((4.6, 3.4))
    for offset, (part, color) in enumerate(zip(("train", "validation", "test"), COLORS)):
        ax.bar(x + (offset - 1) * 0.27, [audit[part][c] for c in classes], 0.27, label=part, color=color)
    _tick_names(ax, classes)
    ax.set_ylabel("images")
    ax.yaxis.set_major_formatter(THOUSANDS)
    fig.legend(loc="outside lower center", ncol=3, frameon=False)
    return fig


@styled
def layer_params(name: str, layers: list[tuple[str, int]]):
    """Parameters per layer as horizontal bars, layers without parameters left out (at least one needed)."""
    layers = [(layer, count) for layer, count in layers if count]
    if not layers:
        raise ValueError(f"{name} has no layer with parameters")
    fig, ax = _figure((4.6, 0.38 * len(layers) + 1.2))
    total = sum(count for _, count in layers)
    ax.barh([plain(layer) for layer, _ in layers][::-1], [count for _, count in layers][::-1], color=COLORS[0])
    for index, (_, count) in enumerate(layers[::-1]):
        ax.text(count, index, f" {count:,} ({count / total:.0%})", va="center", fontsize=10)
    ax.set_xlabel("parameters")
    ax.xaxis.set_major_formatter(THOUSANDS)
    ax.xaxis.set_major_locator(MaxNLocator(4))
    ax.set_xlim(0, max(count for _, count in layers) * 1.6)
    ax.set_title(plain(f"{name}: parameters per layer"))
    return fig


def _series(history: list[dict], key: str) -> tuple[list[float], list[float]] | None:
    rows = [row for row in history if row.get(key) is not None]
    return ([row["epoch"] for row in rows], [row[key] for row in rows]) if rows else None


def _mean_curve(curves: list[tuple[list[float], list[float]]]) -> tuple[list[float], list[float]]:
    """The mean at each epoch over the seeds that reached it (early stopping can end seeds apart)."""
    epochs = sorted({epoch for xs, _ in curves for epoch in xs})
    by_epoch = [[ys[xs.index(epoch)] for xs, ys in curves if epoch in xs] for epoch in epochs]
    return epochs, [float(np.mean(values)) for values in by_epoch]


@styled
def learning_curve(models, metric: str):
    """``metric`` ('loss' or 'accuracy') per epoch, training solid and validation dashed, a colour per model.

    With several seeds every seed is a thin line and their mean a bold one.
    """
    fig, ax = _figure((4.5, 3.9))
    seeds = max(len(model.runs) for model in models)
    for model, color in zip(models, COLORS):
        for prefix, style, marker in (("", "-", "o"), ("val_", "--", "s")):
            curves = [c for c in (_series(run.history, prefix + metric) for run in model.runs) if c]
            if len(curves) > 1:
                for xs, ys in curves:
                    ax.plot(xs, ys, style, color=color, lw=0.8, alpha=0.4)
            if curves:
                ax.plot(*_mean_curve(curves), style, color=color, lw=2.2, marker=marker, ms=5)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel("accuracy" if metric == "accuracy" else "loss (cross-entropy)")
    if metric == "accuracy":
        ax.yaxis.set_major_formatter(PERCENT)
    ax.grid(alpha=0.3)
    ax.set_title(f"{metric.capitalize()} per epoch")
    fig.legend(handles=_curve_keys(models, seeds), loc="outside lower center", ncol=2, frameon=False)
    return fig


def _curve_keys(models, seeds: int) -> list[Line2D]:
    keys = [Line2D([], [], color=color, lw=2.2, label=plain(model.spec)) for model, color in zip(models, COLORS)]
    keys += [Line2D([], [], color="0.35", lw=1.5, ls="-", marker="o", ms=4, label="training"),
             Line2D([], [], color="0.35", lw=1.5, ls="--", marker="s", ms=4, label="validation")]
    if seeds > 1:
        keys += [Line2D([], [], color="0.35", lw=0.8, alpha=0.5, label="one seed"),
                 Line2D([], [], color="0.35", lw=2.2, label="mean of the seeds")]
    return keys


@styled
def per_class(names: list[str], stats: list[dict], class_names: list[str], title: str):
    """Per-class test accuracy of each model (``stats``: class -> Stat or None), with seed spread as bars."""
    x = np.arange(len(class_names))
    width = 0.8 / len(names)
    fig, ax = _figure((max(4.6, 0.4 * len(class_names) + 1.0), 3.6))
    for index, (name, stat, color) in enumerate(zip(names, stats, COLORS)):
        means = [stat[c].mean if stat[c] else 0 for c in class_names]
        spread = [(stat[c].std or 0) if stat[c] else 0 for c in class_names]
        ax.bar(x + (index - (len(names) - 1) / 2) * width, means, width, label=plain(name), color=color,
               yerr=spread if any(spread) else None, capsize=2, error_kw={"lw": 1})
    _tick_names(ax, class_names)
    ax.set_ylim(0, 1)
    ax.yaxis.set_major_formatter(PERCENT)
    ax.set_ylabel("test accuracy")
    ax.set_title(plain(title))
    fig.legend(loc="outside lower center", ncol=len(names), frameon=False)
    return fig


@styled
def confusion(matrix: np.ndarray, class_names: list[str], title: str):
    """Counts, coloured by their share of the true class's images: one colour scale for any model or seeds."""
    matrix = np.asarray(matrix)
    share = matrix / matrix.sum(axis=1, keepdims=True).clip(1)
    size = max(3.6, 0.3 * len(class_names) + 1.5)
    fig, ax = _figure((size + 0.5, size))
    image = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    names = [plain(name) for name in class_names]
    ticks = 10 if len(names) <= 10 and max(map(len, names)) <= 6 else 8.5
    _tick_names(ax, class_names, ticks)
    ax.set_yticks(range(len(names)), names, fontsize=ticks)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    for (i, j), value in np.ndenumerate(matrix):
        if value:  # empty cells stay blank: the eye goes to the errors
            ax.text(j, i, str(value), ha="center", va="center", fontsize=9 if len(names) <= 12 else 6,
                    color="white" if share[i, j] > 0.5 else "black")
    bar = fig.colorbar(image, ax=ax, fraction=0.046, pad=0.03, format=PERCENT)
    bar.set_label("share of the true class")
    ax.set_title(plain(title))
    return fig


@styled
def shift_robustness(curves: list[tuple[str, dict[int, float]]]):
    """Test accuracy against the shift in pixels: ``curves`` holds ``(label, {pixels: accuracy})``."""
    fig, ax = _figure((4.5, 3.6))
    for (label, curve), color in zip(curves, COLORS):
        shifts = sorted(curve)
        ax.plot(shifts, [curve[s] for s in shifts], "-o", color=color, lw=2, label=plain(label))
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("shift right or down (pixels)")
    ax.set_ylabel("test accuracy")
    ax.set_ylim(0, 1)
    ax.yaxis.set_major_formatter(PERCENT)
    ax.grid(alpha=0.3)
    ax.set_title("Accuracy on shifted test images")
    fig.legend(loc="outside lower center", ncol=len(curves), frameon=False)
    return fig


@styled
def filters(name: str, kernels: np.ndarray):
    """Each kernel scaled to [0, 1] on its own and drawn as a small image (colour kernels in colour)."""
    count = len(kernels)
    cols = min(count, 8)
    rows = -(-count // cols)
    fig, axes = _figure((cols * 0.55 + 0.2, rows * 0.55 + 0.5), rows, cols, squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, kernel in zip(axes.flat, kernels):
        low, high = kernel.min(), kernel.max()
        image = (kernel - low) / (high - low + 1e-12)
        ax.imshow(image if image.shape[-1] == 3 else image[..., 0], cmap="gray", interpolation="nearest")
    fig.suptitle(plain(f"{name}: the {count} first-layer filters"))
    return fig


@styled
def disagreement_grid(images, labels, predicted, class_names, title: str | None = None, n: int = 10):
    """Up to ``n`` images (at least one), each titled with its class and the wrong answer it was given."""
    shown = min(n, len(images))
    if not shown:
        raise ValueError("no images to show")
    cols = min(shown, 5)
    rows = -(-shown // cols)
    fig, axes = _figure((0.95 * cols, 1.4 * rows), rows, cols, squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    size = 10 if max(map(len, class_names)) <= 6 else 8.5  # 'said automobile' fits an image's width
    for ax, image, label, guess in zip(axes.flat, images[:shown], labels, predicted):
        _show(ax, image)
        ax.set_title(plain(f"{class_names[label]}\nsaid {class_names[guess]}"), fontsize=size)
    if title:  # the report says it in the caption instead
        fig.suptitle(plain(title))
    return fig


@styled
def map_grid(images: np.ndarray, columns: list[tuple[str, np.ndarray, list[bool], list[str]]], rows: list[str]):
    """A row per image: the image, then each column's map drawn over it (``columns``: ``(heading, maps (N, H, W)
    in [0, 1], whether each image's answer is right, each answer)``); ``rows`` labels each image."""
    if not len(images) or not columns:
        raise ValueError("no maps to show")
    count, cols = len(images), len(columns) + 1
    fig, axes = _figure((1.05 * cols + 0.4, 1.25 * count + 0.5), count, cols, squeeze=False)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
        ax.spines[:].set_visible(False)
    for row, image in enumerate(images):
        _show(axes[row, 0], image)
        axes[row, 0].set_ylabel(plain(rows[row]), fontsize=9)
        for col, (_, maps, right, said) in enumerate(columns, start=1):
            _show(axes[row, col], image)
            axes[row, col].imshow(maps[row], cmap="jet", alpha=0.5, vmin=0, vmax=1, interpolation="bilinear")
            axes[row, col].set_xlabel(plain(f"said {said[row]}"), fontsize=9,
                                      color="black" if right[row] else COLORS[1])
    axes[0, 0].set_title("image", fontsize=10)
    for col, (heading, *_) in enumerate(columns, start=1):
        axes[0, col].set_title(plain(heading), fontsize=10)
    return fig
