"""Keras' spatial arithmetic for windowed layers (convolutions and pooling); pure Python."""

from __future__ import annotations

from cnnlab.errors import SpecError


def output_size(size: int, window: int, stride: int, padding: str, dilation: int = 1) -> int:
    """Keras' output length along one axis: 'valid' floors, 'same' is ceil(size/stride)."""
    if padding == "same":
        return -(-size // stride)
    return (size - effective_window(window, dilation)) // stride + 1


def effective_window(window: int, dilation: int = 1) -> int:
    """The span a dilated window covers: (k - 1) * d + 1."""
    return (window - 1) * dilation + 1


def same_padding(size: int, window: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """TensorFlow's 'same' padding (before, after): the extra pixel goes after."""
    span = effective_window(window, dilation)
    total = max((output_size(size, window, stride, "same") - 1) * stride + span - size, 0)
    return total // 2, total - total // 2


def window_output(shape: tuple[int, ...], window: tuple[int, int], strides: tuple[int, int], padding: str,
                  where: str, field: str, dilation: tuple[int, int] = (1, 1)) -> tuple[int, int]:
    """Output (H, W) of a windowed layer on ``(H, W, C)``, refusing a 'valid' window that does not fit."""
    out = [output_size(shape[i], window[i], strides[i], padding, dilation[i]) for i in (0, 1)]
    spans = [effective_window(window[i], dilation[i]) for i in (0, 1)]
    if padding == "valid" and (spans[0] > shape[0] or spans[1] > shape[1]):
        dilated = " (dilated)" if dilation != (1, 1) else ""
        raise SpecError(
            f"{where}: field '{field}': {spans[0]}x{spans[1]}{dilated} is larger than its input "
            f"{shape[0]}x{shape[1]} with padding 'valid'; the output would be (None, {out[0]}, {out[1]}, ...). "
            f"Use padding 'same' or a smaller {field}")
    return out[0], out[1]
