"""A picture of a network's graph, as Keras' ``plot_model`` draws it, without pydot or Graphviz.

Layers are boxes ranked by their longest path from the input (a chain is one column; a
shortcut's branches sit side by side) and joined by arrows from each input to its layer.
Drawn on a :class:`matplotlib.figure.Figure` (no pyplot: the user's backend is never changed).
"""

from __future__ import annotations

from dataclasses import dataclass

from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

from cnnlab.net.inference import ModelInfo
from cnnlab.net.registry import shape_text
from cnnlab.net.spec import INPUT
from cnnlab.presenters.plots import FigureError, plain

BOX_HEIGHT, CHAR_WIDTH = 0.62, 0.066  # inches: two lines of 7.5 pt monospace text, and one character
STEP_ALONG, GAP = 1.0, 0.4  # inches between ranks, and between the boxes of one rank
MAX_PLOTTED_LAYERS = 400  # a bigger graph is unreadable, and its canvas grows with every box


@dataclass(frozen=True)
class GraphOptions:
    """Keras' plot_model switches that change what a box says, and the direction of the graph."""

    show_shapes: bool = False
    show_layer_names: bool = True
    show_layer_activations: bool = False
    show_trainable: bool = False
    rankdir: str = "TB"

    def check(self) -> GraphOptions:
        if self.rankdir not in ("TB", "LR"):
            raise FigureError(f"plot_model: rankdir must be 'TB' (top to bottom) or 'LR' (left to right), "
                              f"got {self.rankdir!r}")
        return self


@dataclass(frozen=True)
class Node:
    name: str
    text: str
    rank: int  # its longest path from the input
    slot: float  # its place across the rank, centred on 0
    inputs: tuple[str, ...]


def graph_nodes(info: ModelInfo, options: GraphOptions) -> list[Node]:
    """One node per layer (the input first), each placed by rank and by order within its rank."""
    ranks = {INPUT: 0}
    for layer in info.layers:
        ranks[layer.layer.name] = 1 + max(ranks[name] for name in layer.layer.inputs)
    texts = {INPUT: _input_text(info, options), **{layer.layer.name: _layer_text(layer, options)
                                                   for layer in info.layers}}
    inputs = {INPUT: (), **{layer.layer.name: layer.layer.inputs for layer in info.layers}}
    by_rank: dict[int, list[str]] = {}
    for name in ranks:  # dicts keep the spec's order, so a rank's boxes read left to right as written
        by_rank.setdefault(ranks[name], []).append(name)
    return [Node(name, texts[name], rank, index - (len(names) - 1) / 2, inputs[name])
            for rank, names in by_rank.items() for index, name in enumerate(names)]


def _input_text(info: ModelInfo, options: GraphOptions) -> str:
    lines = ["input (InputLayer)" if options.show_layer_names else "InputLayer"]
    if options.show_shapes:
        lines.append(f"output: {shape_text(info.input_shape)}")
    return "\n".join(lines)


def _layer_text(layer, options: GraphOptions) -> str:
    spec = layer.layer
    title = f"{spec.name} ({spec.keras_class})" if options.show_layer_names else spec.keras_class
    if options.show_layer_activations and "activation" in spec.fields:
        title += f"  {spec['activation']}"
    if options.show_trainable:
        title += "  trainable" if spec.fields.get("trainable", True) else "  frozen"
    lines = [title]
    if options.show_shapes:
        shapes = ", ".join(shape_text(shape) for shape in layer.input_shapes)
        lines.append(f"{shapes} → {shape_text(layer.output_shape)}")
    return "\n".join(lines)


def graph_figure(info: ModelInfo, options: GraphOptions = GraphOptions()) -> Figure:
    """The network's graph as a figure: a box per layer, an arrow per connection."""
    options.check()
    if len(info.layers) > MAX_PLOTTED_LAYERS:
        raise FigureError(f"plot_model: {len(info.layers)} layers is more than {MAX_PLOTTED_LAYERS} boxes can "
                          "show readably; use model.summary() instead")
    nodes = graph_nodes(info, options)
    ranks, tall = max(node.rank for node in nodes) + 1, options.rankdir == "TB"
    width = 0.3 + CHAR_WIDTH * max(len(line) for node in nodes for line in node.text.splitlines())
    centres = {node.name: _centre(node, ranks, tall, width) for node in nodes}
    xs, ys = [c[0] for c in centres.values()], [c[1] for c in centres.values()]
    left, right = min(xs) - width / 2 - 0.2, max(xs) + width / 2 + 0.6  # room for shortcuts' bows
    bottom, top = min(ys) - BOX_HEIGHT, max(ys) + BOX_HEIGHT
    fig = Figure(figsize=(right - left, top - bottom))  # data units are inches: boxes keep their shape
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_axis_off()
    ax.set_xlim(left, right)
    ax.set_ylim(bottom, top)
    rank_of = {node.name: node.rank for node in nodes}
    for node in nodes:
        for source in node.inputs:  # a shortcut over several ranks bends aside, not through the boxes
            bend = 0.0 if node.rank - rank_of[source] == 1 else -0.35
            _arrow(ax, centres[source], centres[node.name], (width, tall, bend))
        _box(ax, centres[node.name], node.text, width)
    return fig


def _centre(node: Node, ranks: int, tall: bool, width: float) -> tuple[float, float]:
    """Where a box sits, in data units (inches): the first rank on top (TB) or on the left (LR)."""
    if tall:
        return node.slot * (width + GAP), (ranks - 1 - node.rank) * STEP_ALONG
    return node.rank * (width + 0.6), -node.slot * STEP_ALONG


def _box(ax, centre: tuple[float, float], text: str, width: float) -> None:
    x, y = centre
    ax.add_patch(FancyBboxPatch((x - width / 2, y - BOX_HEIGHT / 2), width, BOX_HEIGHT,
                                boxstyle="round,pad=0.02", facecolor="#eef3fb", edgecolor="#33507a"))
    ax.text(x, y, plain(text), ha="center", va="center", fontsize=7.5, family="monospace")


def _arrow(ax, start: tuple[float, float], end: tuple[float, float], how: tuple[float, bool, float]) -> None:
    """From the bottom of ``start``'s box to the top of ``end``'s (TB; right to left side in LR); a
    shortcut (``bend`` set) leaves and enters by the boxes' sides and bows outside the column."""
    width, tall, bend = how
    if bend and tall:
        tail, head = (start[0] + width / 2, start[1]), (end[0] + width / 2, end[1])
        bend = -min(0.35, 1.6 / max(abs(start[1] - end[1]), 1e-6))  # bows about 0.4 inch out, whatever its length
    elif tall:
        tail, head = (start[0], start[1] - BOX_HEIGHT / 2), (end[0], end[1] + BOX_HEIGHT / 2)
    else:
        tail, head = (start[0] + width / 2, start[1]), (end[0] - width / 2, end[1])
    ax.add_patch(FancyArrowPatch(tail, head, arrowstyle="-|>", mutation_scale=9, color="#555555",
                                 shrinkA=0, shrinkB=0, connectionstyle=f"arc3,rad={bend}"))


PLOT_FORMATS = ("png", "svg", "pdf")  # the ones whose files carry the mark that says cnnlab drew them
MARK = "cnnlab plot_model"
MAX_REPLACED_BYTES = 64 * 2**20  # a graph picture is far smaller; a bigger file is not one of ours


def save_graph(fig: Figure, path, dpi: int) -> None:
    """Write the picture to ``path`` atomically, never through a link, replacing only a picture
    cnnlab drew (it carries ``MARK`` in its metadata): a notebook cell re-run overwrites its own file."""
    from pathlib import Path

    from cnnlab.files import check_replaceable, read_regular, write_file

    path = Path(path)
    kind = path.suffix.lower().lstrip(".")
    if kind not in PLOT_FORMATS:
        raise FigureError(f"{path}: plot_model writes .png, .svg or .pdf, got '{path.suffix or 'no suffix'}'")
    if not path.parent.is_dir():
        raise FigureError(f"{path}: the folder {path.parent} does not exist")
    if check_replaceable(path) and MARK.encode() not in read_regular(path, MAX_REPLACED_BYTES, FigureError,
                                                                      "picture"):
        raise FigureError(f"{path}: exists and is not a picture plot_model drew; choose another to_file")
    metadata = {"png": {"Software": MARK}, "svg": {"Creator": MARK}, "pdf": {"Creator": MARK}}[kind]

    def draw(handle) -> None:
        fig.savefig(handle, format=kind, dpi=dpi, metadata=metadata)

    write_file(path, draw, root=path.parent)
