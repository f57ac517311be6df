"""Keras-style ``model.summary()`` text, with parameter formulas and MACs."""

from __future__ import annotations

import json

from cnnlab.net.inference import BYTES_PER_FLOAT, ModelInfo
from cnnlab.net.registry import shape_text
from cnnlab.net.spec import INPUT

HEADERS = ("Layer (type)", "Output Shape", "Param #", "Formula", "MACs")
GRAPH_HEADERS = (*HEADERS, "Connected to")
RIGHT_ALIGNED = {2, 4}


def readable_bytes(count: int) -> str:
    """Keras' memory size text: 1024-based units with two decimals."""
    size = float(count)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.2f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def _rows(info: ModelInfo, show_trainable: bool = False) -> list[tuple[str, ...]]:
    """One row per layer; a graph adds an input row and Keras' 'Connected to' cells, one line per input
    (continuation rows carry only that cell). ``show_trainable`` adds Keras' last column: Y or N for a
    layer with weights, '-' for one without."""
    rows = [
        (
            f"{layer.layer.name} ({layer.layer.keras_class})",
            shape_text(layer.output_shape),
            f"{layer.params:,}",
            layer.formula if layer.params else "-",
            f"{layer.macs:,}",
        )
        for layer in info.layers
    ]
    flags = [(("Y" if layer.layer.trainable else "N") if layer.params else "-",) if show_trainable else ()
             for layer in info.layers]
    if info.is_chain:
        return [(*row, *flag) for row, flag in zip(rows, flags)]
    more_cells = ("",) if show_trainable else ()
    graph = [(f"{INPUT} (InputLayer)", shape_text(info.input_shape), "0", "-", "0", "-",
              *(("-",) if show_trainable else ()))]
    for row, layer, flag in zip(rows, info.layers, flags):
        first, *rest = [f"{name}[0][0]" for name in layer.layer.inputs]
        graph.append((*row, first, *flag))
        graph += [("", "", "", "", "", more, *more_cells) for more in rest]
    return graph


def _format_row(cells: tuple[str, ...], widths: list[int]) -> str:
    parts = [
        cell.rjust(width) if i in RIGHT_ALIGNED else cell.ljust(width)
        for i, (cell, width) in enumerate(zip(cells, widths))
    ]
    return (" " + "   ".join(parts)).rstrip()


def _params_line(label: str, count: int) -> str:
    return f"{label}: {count:,} ({readable_bytes(count * BYTES_PER_FLOAT)})"


def format_summary(info: ModelInfo, line_length: int | None = None, show_trainable: bool = False) -> str:
    """The summary table and footer as printed by ``cnnlab summary``; ``line_length`` (Keras' argument)
    sets the table's width: wider pads the layer column, narrower cuts the longest name and formula
    cells with an ellipsis (down to their headers' width); ``show_trainable`` adds Keras' Trainable column."""
    headers = (*(HEADERS if info.is_chain else GRAPH_HEADERS), *(("Trainable",) if show_trainable else ()))
    rows = _rows(info, show_trainable)
    widths = [max(len(row[i]) for row in [headers, *rows]) for i in range(len(headers))]
    if line_length is not None:
        widths = _fitted(widths, headers, line_length)
        rows = [tuple(_cut(cell, width) for cell, width in zip(row, widths)) for row in rows]
    rule_width = sum(widths) + 3 * (len(widths) - 1) + 1
    largest = info.largest_layer
    share = largest.params / info.total_params if info.total_params else 0.0
    lines = [
        f'Model: "{info.name}"    input: {shape_text(info.input_shape)}',
        "_" * rule_width,
        _format_row(headers, widths),
        "=" * rule_width,
        *(_format_row(row, widths) for row in rows),
        "=" * rule_width,
        _params_line("Total params", info.total_params),
        _params_line("Trainable params", info.trainable_params),
        _params_line("Non-trainable params", info.non_trainable_params),
        f"Forward MACs per sample: {info.macs:,}",
        f"Activation memory per sample: {readable_bytes(info.activation_bytes)} (float32 outputs)",
        f"Most parameters: {largest.layer.name} ({largest.layer.keras_class}) "
        f"with {largest.params:,} ({share:.1%} of total)",
        "_" * rule_width,
    ]
    return "\n".join(lines) + "\n"


def _fitted(widths: list[int], headers: tuple[str, ...], line_length: int) -> list[int]:
    """Column widths for a table ``line_length`` wide: the layer column takes the room left over, or the
    layer and formula columns give theirs up, the wider first."""
    widths = list(widths)
    spare = line_length - (sum(widths) + 3 * (len(widths) - 1) + 1)
    widths[0] += max(spare, 0)
    while spare < 0:
        column = max((0, 3), key=lambda i: widths[i] - len(headers[i]))
        if widths[column] <= len(headers[column]):
            break  # no narrower without cutting the headers
        widths[column] -= 1
        spare += 1
    return widths


def _cut(cell: str, width: int) -> str:
    return cell if len(cell) <= width else cell[:width - 1] + "…"


def format_summary_json(info: ModelInfo) -> str:
    return json.dumps(info.to_dict(), indent=2) + "\n"
