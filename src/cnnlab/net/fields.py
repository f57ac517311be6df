"""Field types of the layer-spec language: each checks and normalises one value.

A layer kind declares its fields as ``{name: Field(type, default)}``. The types are
objects, not bare functions, so that documentation (``describe``) and the randomized
tests (which draw values per type) are generic over them. Pure Python.
"""

from __future__ import annotations

import difflib
import re
import reprlib
from dataclasses import dataclass
from typing import Any

from cnnlab.errors import SpecError

ACTIVATIONS = ("linear", "relu", "sigmoid", "tanh", "softmax", "gelu", "leaky_relu", "elu", "silu", "softplus")
ACTIVATION_ALIASES = {"swish": "silu"}  # Keras 3 resolves "swish" to silu
PADDINGS = ("valid", "same")
SHOWN_CHARS = 60  # an error never prints more of a user's value than this
MAX_INT = 2**31  # sizes, windows and paddings stay below it (torch's int32 kernels)
FLOAT32_MAX = 3.4028234663852886e38  # the largest finite float32


_REPR = reprlib.Repr()  # keyword arguments only from Python 3.12
_REPR.maxlevel, _REPR.maxlist, _REPR.maxtuple, _REPR.maxdict = 3, 4, 4, 4
_REPR.maxstring = _REPR.maxother = SHOWN_CHARS


def shown(value: Any) -> str:
    """A user's value for an error message: a bounded repr, cut short.

    reprlib stops at a few levels and items, so even a YAML alias bomb (a billion
    shared leaves) prints in microseconds.
    """
    text = _REPR.repr(value)
    return text if len(text) <= SHOWN_CHARS else text[:SHOWN_CHARS] + "...(cut)"


def suggest(word: Any, options) -> str:
    """`` (did you mean 'x'?)`` for the closest option, or nothing."""
    if not isinstance(word, str):
        return ""
    close = difflib.get_close_matches(word[:SHOWN_CHARS], list(options), n=1, cutoff=0.5)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_size(value: Any) -> bool:
    """A non-negative int below MAX_INT."""
    return _is_int(value) and 0 <= value < MAX_INT


class FieldType:
    """Checks one field's value: ``check(value, where)`` returns it normalised or raises SpecError."""

    text = "a value"

    def check(self, value: Any, where: str) -> Any:
        raise NotImplementedError

    def fail(self, value: Any, where: str) -> SpecError:
        return SpecError(f"{where}: expected {self.text}, got {shown(value)}{_number_text_hint(value)}")


def _number_text_hint(value: Any) -> str:
    """Why a number arrived as text: YAML 1.1 (PyYAML's) reads ``1e-3`` as a string (``1.0e-3`` is a
    number), and a quoted number is a string."""
    if not isinstance(value, str) or len(value) > SHOWN_CHARS:
        return ""
    exponent = re.fullmatch(r"([-+]?\d+)[eE]([-+]?)(\d+)", value.strip())
    if exponent:
        mantissa, sign, power = exponent.groups()
        return f" (text: YAML reads {value.strip()} as a string; write {mantissa}.0e{sign or '+'}{power})"
    try:
        number = float(value)
    except ValueError:
        return ""
    return " (a string: write the number without quotes)" if abs(number) < float("inf") else ""


class PositiveInt(FieldType):
    text = "a positive integer (below 2^31)"

    def check(self, value, where):
        if not _is_int(value) or not 0 < value < MAX_INT:
            raise self.fail(value, where)
        return value


class NonNegativeInt(FieldType):
    text = "a non-negative integer (below 2^31)"

    def check(self, value, where):
        if not _is_int(value) or not 0 <= value < MAX_INT:
            raise self.fail(value, where)
        return value


class Pair(FieldType):
    """An int or ``[h, w]`` of positive ints, normalised to a tuple."""

    text = "a positive integer or [h, w]"

    def check(self, value, where):
        if isinstance(value, (list, tuple)) and len(value) == 2 and all(_is_int(v) and 0 < v < MAX_INT for v in value):
            return (value[0], value[1])
        if _is_int(value) and 0 < value < MAX_INT:
            return (value, value)
        raise self.fail(value, where)


class OptionalPair(Pair):
    text = "a positive integer, [h, w], or null"

    def check(self, value, where):
        return None if value is None else super().check(value, where)


class Padding2D(FieldType):
    """zeropadding2d's amounts: ``n``, ``[h, w]`` or ``[[top, bottom], [left, right]]``."""

    text = "a non-negative integer, [h, w] or [[top, bottom], [left, right]]"

    def check(self, value, where):
        if _is_size(value):
            return ((value, value), (value, value))
        if isinstance(value, (list, tuple)) and len(value) == 2:
            if all(_is_size(v) for v in value):
                return ((value[0], value[0]), (value[1], value[1]))
            if all(isinstance(v, (list, tuple)) and len(v) == 2 and all(_is_size(n) for n in v) for v in value):
                return ((value[0][0], value[0][1]), (value[1][0], value[1][1]))
        raise self.fail(value, where)


class Choice(FieldType):
    def __init__(self, options: tuple[str, ...], aliases: dict[str, str] | None = None):
        self.options, self.aliases = options, aliases or {}
        self.text = "one of " + ", ".join(options)

    def check(self, value, where):
        if not isinstance(value, str):
            raise self.fail(value, where)
        key = value.lower()
        key = self.aliases.get(key, key)
        if key not in self.options:
            raise SpecError(f"{where}: unknown value {shown(value)}{suggest(value, self.options)}; "
                            f"expected {self.text}")
        return key


class Bool(FieldType):
    text = "true or false"

    def check(self, value, where):
        if not isinstance(value, bool):
            raise self.fail(value, where)
        return value


class Fraction(FieldType):
    text = "a number in [0, 1)"

    def check(self, value, where):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
            raise self.fail(value, where)
        return float(value)


class PositiveFloat(FieldType):
    text = "a positive number"

    def check(self, value, where):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < float("inf"):
            raise self.fail(value, where)
        return float(value)


class Axis(FieldType):
    """An axis of Keras' shape ``(None, ...)``; checked against the rank when shapes are known."""

    text = "a non-zero integer axis (-1 is the last)"

    def check(self, value, where):
        if not _is_int(value) or value == 0 or abs(value) > 8:
            raise self.fail(value, where)
        return value


def _is_number(value: Any) -> bool:
    """A finite int or float (bool is not a number here)."""
    return not isinstance(value, bool) and isinstance(value, (int, float)) and abs(value) < float("inf")


class Number(FieldType):
    text = "a finite number (float32's range: |x| <= 3.4e38)"

    def check(self, value, where):
        # The value meets float32 tensors: a larger one would turn into inf there.
        if not _is_number(value) or abs(value) > FLOAT32_MAX:
            raise self.fail(value, where)
        return float(value)


class Probability(FieldType):
    text = "a probability in [0, 1]"

    def check(self, value, where):
        if not _is_number(value) or not 0 <= value <= 1:
            raise self.fail(value, where)
        return float(value)


class Factor(FieldType):
    """Keras' factor of an image side: ``f`` means [-|f|, |f|], ``[lower, upper]`` is sorted; all in [-1, 1]."""

    text = "a number in [-1, 1] or [lower, upper] of them"

    def check(self, value, where):
        if _is_number(value) and -1 <= value <= 1:
            return (-abs(float(value)), abs(float(value)))
        if isinstance(value, (list, tuple)) and len(value) == 2 and all(_is_number(v) and -1 <= v <= 1
                                                                        for v in value):
            lower, upper = sorted(float(v) for v in value)
            return (lower, upper)
        raise self.fail(value, where)


class Extent(FieldType):
    """A length on the image: a fraction of the side (a float in (0, 1)) or whole pixels (an int >= 1)."""

    text = "a fraction of the image side in (0, 1), or a whole number of pixels"

    def check(self, value, where):
        if isinstance(value, float) and 0 < value < 1:
            return value
        if _is_int(value) and 0 < value < MAX_INT:
            return value
        raise self.fail(value, where)


ACTIVATION = Choice(ACTIVATIONS, ACTIVATION_ALIASES)
PADDING = Choice(PADDINGS)
REQUIRED = object()


@dataclass(frozen=True)
class Field:
    """A field of a layer kind: its type, its default (or REQUIRED), and a Keras argument name."""

    type: FieldType
    default: Any = REQUIRED
    keras: str | None = None  # the Keras constructor's name for it, where it differs
    default_text: str | None = None  # how the docs show a default that is derived
    cnnlab_values: tuple = ()  # values Keras has no counterpart for (an export writes the default instead)
    cnnlab_field: bool = False  # Keras' layer has no such argument: exports leave it out, and the spec's
    # file format writes it only where it is set (so specs and configs without it read as before)

    @property
    def required(self) -> bool:
        return self.default is REQUIRED

    def describe(self, name: str) -> str:
        """``name`` or ``name`` (default), for the docs."""
        if self.required:
            return f"`{name}`"
        default = self.default
        text = self.default_text or (("true" if default else "false") if isinstance(default, bool)
                                     else str(default).replace("'", ""))
        return f"`{name}` ({text})"
