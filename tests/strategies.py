"""Hypothesis strategies for random networks, drawn from the registry of layer kinds.

Kinds, their fields and their number of inputs come from the registry; values come
from the field's *type*. A new kind is therefore drawn the day it is registered, and
a new field type without a strategy here fails ``test_every_field_type_has_a_strategy``.
"""

from hypothesis import strategies as st

from cnnlab.errors import SpecError
from cnnlab.net import fields as F
from cnnlab.net.inference import infer
from cnnlab.net.registry import all_kinds
from cnnlab.net.spec import INPUT, parse_spec

_PAIR = st.one_of(st.integers(1, 3), st.lists(st.integers(1, 3), min_size=2, max_size=2))
_PAD = st.integers(0, 2)

# Field type -> strategy of raw (spec-file) values. Small values keep the tensors small.
FIELD_STRATEGIES = {
    F.PositiveInt: lambda t: st.integers(1, 6),
    F.NonNegativeInt: lambda t: st.integers(0, 3),
    F.Pair: lambda t: _PAIR,
    F.OptionalPair: lambda t: st.one_of(st.none(), _PAIR),
    F.Padding2D: lambda t: st.one_of(_PAD, st.lists(_PAD, min_size=2, max_size=2),
                                     st.lists(st.lists(_PAD, min_size=2, max_size=2), min_size=2, max_size=2)),
    F.Choice: lambda t: st.sampled_from(t.options),
    F.Bool: lambda t: st.booleans(),
    F.Fraction: lambda t: st.floats(0, 0.9),
    F.PositiveFloat: lambda t: st.floats(1e-5, 0.1),
    F.Axis: lambda t: st.sampled_from([-1, -2, -3, 1, 2, 3]),
    F.Number: lambda t: st.floats(-2, 2),
    F.Probability: lambda t: st.floats(0, 1),
    F.Factor: lambda t: st.one_of(st.floats(-1, 1), st.lists(st.floats(-1, 1), min_size=2, max_size=2)),
    F.Extent: lambda t: st.one_of(st.floats(0.05, 0.95), st.integers(1, 4)),
}


def field_strategy(field_type):
    return FIELD_STRATEGIES[type(field_type)](field_type)


@st.composite
def layer_fields(draw, kind):
    """Values for some of a kind's fields (required ones always; optional ones half the time). cnnlab's own
    training fields (``cnnlab_field``: what trains when, not shapes or counts but for a frozen kernel, which Keras'
    layers cannot say) keep their defaults; tests/test_airbench_options.py holds them."""
    values = {}
    for name, spec_field in kind.fields.items():
        if spec_field.cnnlab_field and not spec_field.required:
            continue
        if spec_field.required or draw(st.booleans()):
            values[name] = draw(field_strategy(spec_field.type))
    return values


@st.composite
def _inputs(draw, kind, nodes):
    """Distinct earlier nodes, mostly recent ones; merges prefer nodes of the anchor's shape."""
    high = min(kind.max_inputs or 3, len(nodes))
    if kind.min_inputs > high:
        return None
    count = draw(st.integers(kind.min_inputs, high))
    anchor = len(nodes) - 1 - draw(st.integers(0, min(2, len(nodes) - 1)))
    others = [i for i in range(len(nodes)) if i != anchor]
    alike = [i for i in others if nodes[i][1] == nodes[anchor][1]]
    pool = alike if len(alike) >= count - 1 and draw(st.booleans()) else others
    picked = draw(st.permutations(pool))[:count - 1]
    return [nodes[i][0] for i in [anchor, *picked]]


@st.composite
def random_graphs(draw, max_layers=7, tries=8):
    """A valid spec dict whose layers may read any earlier layer: chains, residual adds, concatenations."""
    image = draw(st.booleans()) or draw(st.booleans())
    shape = ((draw(st.integers(1, 10)), draw(st.integers(1, 10)), draw(st.integers(1, 3))) if image
             else (draw(st.integers(1, 12)),))
    kinds = all_kinds()
    names = sorted(kinds)
    nodes, layers = [(INPUT, shape)], []
    for index in range(draw(st.integers(1, max_layers))):
        for _ in range(tries):
            kind = kinds[draw(st.sampled_from(names))]
            inputs = draw(_inputs(kind, nodes))
            if inputs is None:
                continue
            layer = {"kind": kind.name, "name": f"l{index}", "inputs": inputs, **draw(layer_fields(kind))}
            try:
                out = infer(parse_spec({"input": list(shape), "layers": [*layers, layer]})).output_shape
            except SpecError:
                continue
            layers.append(layer)
            nodes.append((layer["name"], out))
            break
    if not layers:
        layers = [{"kind": "dropout", "rate": 0.1}]
    return {"input": list(shape), "layers": layers}
