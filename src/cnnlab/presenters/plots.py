"""Pictures: sample grids and other figures, drawn without pyplot (no backend is ever changed)."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from cnnlab.errors import CnnlabError

MAX_GRID_IMAGES = 100  # more is unreadable, and the canvas (and its memory) grows with every image
# What a figure may be saved as: matplotlib's formats less 'pgf' (it needs LaTeX installed).
FIGURE_FORMATS = ("png", "jpg", "jpeg", "pdf", "svg", "svgz", "eps", "ps", "tif", "tiff", "webp", "gif")


class FigureError(CnnlabError, ValueError):
    """A figure that cannot be drawn or saved as asked; names the option or the file."""


def plain(text: object) -> str:
    """``text`` to draw as it is: a '$' pair would start mathtext, and '$^$' crashes its parser."""
    return str(text).replace("$", r"\$")


def check_sample_options(n: int, seed: int) -> None:
    """The grid's size and seed, refused before any data is loaded."""
    if not 1 <= n <= MAX_GRID_IMAGES:
        raise FigureError(f"--n (n): the number of images must be 1 to {MAX_GRID_IMAGES}, got {n}")
    if seed < 0:
        raise FigureError(f"--seed (seed): must be 0 or more, got {seed}")


def figure_format(path: str | Path) -> str:
    """The format ``path``'s suffix asks for; one matplotlib cannot write is an error naming the file."""
    suffix = Path(path).suffix.lower().lstrip(".")
    if suffix not in FIGURE_FORMATS:
        shown = f"'.{suffix}'" if suffix else "no suffix"
        raise FigureError(f"{path}: {shown} is not an image format cnnlab saves; use one of "
                          f"{', '.join('.' + name for name in FIGURE_FORMATS)}")
    return suffix


class Picture(Figure):
    """A matplotlib Figure that Jupyter shows once, as PNG, without pyplot.

    Figures are made without pyplot, so cnnlab never switches the user's backend and a
    notebook does not draw a figure twice (once as the cell's value, once at the cell's end).
    One made for pyplot (:func:`subplots` with ``pyplot=True``) leaves pyplot's figures when
    Jupyter shows it as a cell's value, so the cell's end does not draw it again.
    """

    def _repr_png_(self) -> bytes:
        buffer = io.BytesIO()
        self.savefig(buffer, format="png", dpi=100)
        return buffer.getvalue()

    def _ipython_display_(self) -> None:
        # Before the inline backend's own Figure printer (which would not know to leave pyplot).
        from IPython.display import display

        pyplot = sys.modules.get("matplotlib.pyplot")
        if pyplot is not None and self.canvas.manager is not None:  # one of pyplot's figures
            pyplot.close(self)  # shown now: not again when the cell ends
        display({"image/png": self._repr_png_(), "text/plain": repr(self)}, raw=True)


def subplots(nrows: int = 1, ncols: int = 1, *, figsize: tuple[float, float], pyplot: bool = False, **options):
    """``(figure, axes)`` as ``pyplot.subplots`` gives them, on a :class:`Picture`. ``pyplot=True``: one
    of pyplot's figures, so that ``plt.show()`` draws it, where the user imported pyplot (it is never
    imported here: the backend stays the user's)."""
    plt = sys.modules.get("matplotlib.pyplot") if pyplot else None
    fig = Picture(figsize=figsize) if plt is None else plt.figure(figsize=figsize, FigureClass=Picture)
    return fig, fig.subplots(nrows, ncols, **options)


def sample_grid(images: np.ndarray, labels: np.ndarray, class_names: list[str], n: int = 10,
                seed: int = 0, title: str | None = None, pyplot: bool = False):
    """A matplotlib Figure of ``n`` random images titled with their class names (``pyplot``: see :func:`subplots`)."""
    check_sample_options(n, seed)
    if not len(images):
        raise FigureError("no images to show in this part of the dataset")
    rng = np.random.default_rng(seed)
    picks = rng.choice(len(images), size=min(n, len(images)), replace=False)
    cols = min(len(picks), 5)
    rows = -(-len(picks) // cols)
    fig, axes = subplots(rows, cols, figsize=(1.8 * cols, 1.9 * rows + 0.4), squeeze=False, pyplot=pyplot)
    for ax in axes.flat:
        ax.axis("off")
    for ax, index in zip(axes.flat, picks):
        image = images[index]
        ax.imshow(image[..., 0] if image.shape[-1] == 1 else image,
                  cmap="gray" if image.shape[-1] == 1 else None, vmin=0, vmax=255,
                  interpolation="nearest")
        ax.set_title(plain(class_names[labels[index]]), fontsize=9)
    if title:
        fig.suptitle(plain(title), fontsize=10)
    fig.tight_layout()
    return fig


def figure_png(fig, file_format: str = "png") -> bytes:
    """The figure as PNG (or ``file_format``) bytes: what the one write helper then stores."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format=file_format, dpi=120)
    return buffer.getvalue()


def save_figure(fig, path: str | Path, root: str | Path | None = None) -> Path:
    """Save as PNG through :func:`cnnlab.files.write_file` (atomic, never through a link).

    ``root`` is the run or comparison folder the file belongs in (default: its own folder).
    """
    from cnnlab.files import write_file

    path = Path(path)
    if root is None:
        path.parent.mkdir(parents=True, exist_ok=True)
    return write_file(path, figure_png(fig, path.suffix.lstrip(".").lower() or "png"), root=root or path.parent)


def confusion_figure(matrix, class_names: list[str], title: str = "Confusion matrix"):
    """A heat map of counts, rows the true class and columns the predicted one."""
    matrix = np.asarray(matrix)
    size = max(4.0, 0.55 * len(class_names) + 2)
    fig, ax = subplots(figsize=(size, size * 0.9))
    image = ax.imshow(matrix, cmap="Blues")
    names = [plain(name) for name in class_names]
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(names)), names, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    threshold = matrix.max() / 2 if matrix.size else 0
    for (i, j), value in np.ndenumerate(matrix):
        ax.text(j, i, str(value), ha="center", va="center", fontsize=7,
                color="white" if value > threshold else "black")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    ax.set_title(plain(title), fontsize=10)
    fig.tight_layout()
    return fig
