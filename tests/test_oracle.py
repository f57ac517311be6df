"""Analytic shapes and parameter counts equal what torch builds, for presets and random specs."""

import pytest
from hypothesis import HealthCheck, given, settings

from cnnlab.net.inference import infer
from cnnlab.net.presets import PRESETS, default_input, preset
from cnnlab.net.registry import all_kinds
from cnnlab.net.resolve import summarize
from cnnlab.net.spec import parse_spec

from oracle import analytic_layer_facts, torch_layer_facts
from strategies import FIELD_STRATEGIES, random_graphs


@pytest.mark.parametrize("name", list(PRESETS))
def test_presets_match_torch(name):
    info = summarize(name)
    assert torch_layer_facts(preset(name), default_input(name)) == analytic_layer_facts(info)


@pytest.mark.parametrize("name,total", [("mlp", 563_082), ("cnn", 1_341_226), ("q32", 665_317),
                                        ("resnet20", 274_442)])
def test_preset_totals_equal_keras(name, total):
    # Totals Keras' model.summary() prints for these networks.
    assert summarize(name).total_params == total


def test_q32_answers_the_question():
    info = summarize("q32")
    assert [layer.params for layer in info.layers] == [448, 12_832, 0, 36_992, 0, 615_045]
    assert info.largest_layer.layer.kind == "dense"
    assert info.layers[2].output_shape == (31, 31, 32)  # 3x3/2 'valid' pool: floor((64-3)/2)+1


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(random_graphs())
def test_random_graphs_match_torch(data):
    spec = parse_spec(data)
    info = infer(spec)
    assert torch_layer_facts(spec, spec.input_shape) == analytic_layer_facts(info)


def test_every_field_type_has_a_strategy():
    # A kind with a new field type must teach the strategies how to draw it.
    for kind in all_kinds().values():
        for name, spec_field in kind.fields.items():
            assert type(spec_field.type) in FIELD_STRATEGIES, f"{kind.name}.{name}: no strategy"


def test_strategy_draws_every_kind_and_real_graphs():
    kinds_seen, merged_graphs = set(), 0

    @settings(max_examples=300, database=None, derandomize=True, deadline=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
    @given(random_graphs())
    def collect(data):
        nonlocal merged_graphs
        kinds_seen.update(layer["kind"] for layer in data["layers"])
        merged_graphs += not parse_spec(data).is_chain and any(layer["kind"] in ("add", "concatenate")
                                                                for layer in data["layers"])

    collect()
    assert kinds_seen == set(all_kinds())
    assert merged_graphs >= 20  # residual adds and concatenations, not just chains
