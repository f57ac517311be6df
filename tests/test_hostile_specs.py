"""Hostile specs: bounded work, one clear error, never a traceback or an unbounded message."""

import contextlib
import os
import re
import tracemalloc

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cnnlab.cli.main import main
from cnnlab.errors import CnnlabError, SpecError
from cnnlab.net.fields import SHOWN_CHARS
from cnnlab.net.resolve import resolve_spec, summarize
from cnnlab.net.spec import parse_spec
from cnnlab.net.spec_file import MAX_SPEC_BYTES, load_spec_file, parse_spec_text

LAUGHS = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 10)}]\n" for i in range(8))


def message_of(text):
    with pytest.raises(SpecError) as caught:
        summarize(parse_spec_text(text, "net.yaml"), (8, 8, 3))
    return str(caught.value)


# Bounded work, counted in memory rather than seconds (which a busy machine stretches): refusing these
# specs allocates tens of KB; expanding a billion-leaf alias or parsing a 6 MB spec, far more than this.
BOUNDED_BYTES = 1 << 20


def message_and_peak(text) -> tuple[str, int]:
    """The error of ``text`` and the most memory its refusal allocated at once."""
    tracemalloc.start()
    try:
        return message_of(text), tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_alias_bomb_in_a_field_gives_a_short_message():
    # 10^9 leaves if expanded: the error must name the field and print a bounded value, never expanding it.
    message, peak = message_and_peak(LAUGHS + "layers:\n  - {kind: dense, units: *i}\n")
    assert peak < BOUNDED_BYTES
    assert "unknown top-level key" in message and len(message) < 400
    message = message_of(LAUGHS.replace("\n", "\n  ").join(["x:\n  ", ""]) + "layers:\n  - {kind: flatten}\n")
    assert len(message) < 400


def test_alias_bomb_as_a_field_value():
    chain = ", ".join(["&a [x, x, x, x, x, x, x, x, x, x]"] + [
        f"&{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 10)}]" for i in range(8)])
    message, peak = message_and_peak(f"layers:\n  - {{kind: dense, units: [{chain}]}}\n")
    assert peak < BOUNDED_BYTES
    assert "field 'units'" in message and len(message) < 400


@pytest.mark.parametrize("text,expect", [
    ("[" * 100_000 + "]" * 100_000, "nested more than 32 levels"),
    ("layers: [{kind: dense, units: " + "9" * 5000 + "}]", "a number of 5,000 characters"),
    ("layers: " + "x" * (MAX_SPEC_BYTES + 1), "a spec is at most"),
    ("layers:\n  - !!python/object/apply:os.system [echo hi]\n", "not a valid spec"),
    ("layers: [{kind: dense, units: 1e400}]", "expected a positive integer"),
    ("layers: [{kind: dense, units: .nan}]", "expected a positive integer"),
    ("layers: [{kind: dropout, rate: .nan}]", "expected a number in [0, 1)"),
    ("layers: [{kind: dense, units: 3000000000}]", "expected a positive integer"),
])
def test_bounded_before_parsing(text, expect):
    assert expect in message_of(text)


def test_a_huge_spec_is_refused_fast():
    message, peak = message_and_peak("layers:\n" + "  - {kind: dropout, rate: 0.1}\n" * 200_000)
    assert peak < BOUNDED_BYTES and "a spec is at most" in message  # refused by its size, never parsed


def test_layer_names_cannot_carry_terminal_escapes():
    message = message_of('layers: [{kind: flatten, name: "\\e[31mred\\e[0m"}]')
    assert "\x1b" not in message and "\\x1b" in message


def test_long_values_are_cut_in_messages():
    message = message_of("layers: [{kind: dense, units: '" + "u" * 10_000 + "'}]")
    assert "..." in message and len(message) < 150 + SHOWN_CHARS


def test_too_many_layers_from_python():
    with pytest.raises(SpecError, match="cnnlab takes at most 10,000"):
        parse_spec([{"kind": "flatten"}] * 10_001)


def test_files_that_are_not_specs(tmp_path, capsys):
    latin = tmp_path / "latin.yaml"
    latin.write_bytes("name: caf\xe9\nlayers: [{kind: flatten}]\n".encode("latin-1"))
    fifo = tmp_path / "pipe.yaml"
    os.mkfifo(fifo)
    for path, expect in ((latin, re.escape("not UTF-8 text (byte 9)")), (fifo, "not a regular file"),
                         (tmp_path, "not a regular file")):
        with pytest.raises(SpecError, match=expect):
            load_spec_file(str(path))
    assert main(["summary", str(fifo)]) == 2  # returns at once instead of blocking on the pipe
    assert "cnnlab: error:" in capsys.readouterr().err


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=400))
def test_random_bytes_raise_only_cnnlab_errors(tmp_path_factory, content):
    path = tmp_path_factory.mktemp("spec") / "net.yaml"
    path.write_bytes(content)
    with contextlib.suppress(CnnlabError):  # anything else (a traceback) fails the test
        summarize(load_spec_file(str(path)), (8, 8, 3))


YAML_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8)
    | st.sampled_from(["conv2d", "dense", "add", "input", "same", "relu", "flatten"]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(["kind", "name", "inputs", "filters", "kernel", "units", "rate", "padding", "axis",
                         "layers", "input", "strides", "pool", "activation", "x"]), inner, max_size=5),
    max_leaves=30)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(YAML_VALUES)
def test_random_structures_raise_only_cnnlab_errors(data):
    with contextlib.suppress(CnnlabError):
        summarize(resolve_spec(data) if isinstance(data, (list, dict)) else parse_spec(data), (8, 8, 3))


def test_a_yaml_syntax_error_is_one_line():
    with pytest.raises(SpecError) as caught:
        parse_spec_text("{{{{\n", source="bad.yaml")
    assert "\n" not in str(caught.value) and str(caught.value).startswith("bad.yaml: not a valid spec")


def test_object_reprs_never_reach_a_message():
    from cnnlab.errors import describe, without_reprs

    assert describe(OSError("cannot identify image file <_io.BytesIO object at 0x7f85f8e1afc0>")) == \
        "OSError: cannot identify image file the data"
    assert without_reprs("x <foo.Bar object at 0xDEADbeef> y") == "x the data y"
