"""Model cards against hostile metadata: every fault a ModelFormatError, the card checked
against the graph when a model loads, and a fuzz of mutated cards."""

from __future__ import annotations

import json

import pytest
import tiny_model
from hypothesis import given, settings
from hypothesis import strategies as st

from semdict_onnx._metadata import ModelInfo
from semdict_onnx._model import load_model
from semdict_onnx.errors import ModelFormatError

GOOD = json.loads(tiny_model.tiny_info().to_json())


def card(**changes) -> str:
    """The tiny model's card as JSON, with top-level fields changed (None removes one)."""
    raw = {**GOOD, **changes}
    return json.dumps({key: value for key, value in raw.items() if value is not None})


def with_input(**changes) -> str:
    return card(input={**GOOD["input"], **changes})


def with_layer(index: int, **changes) -> str:
    layers = [dict(layer) for layer in GOOD["layers"]]
    layers[index].update(changes)
    return card(layers=layers)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[1, 2, 3]", "it is a list in JSON, not an object"),
        ("[" * 100000 + "]" * 100000, "nests lists or objects too deeply to be read"),
        (card(network=None), "the card lacks 'network'"),
        (card(replica="yes"), "'replica' must be true or false"),
        (card(labels=["dummy", "cat"]), "it has 2 labels for 6 classes"),
        (card(labels="cat"), "'labels' must be a list of strings"),
        (card(layers=[]), "it must list layers, each once"),
        (card(layers=GOOD["layers"] * 2), "it must list layers, each once"),
        (card(layers=[5]), "the card.layers[0] must be an object, not a number"),
        (card(spritemaps={"late": {"url": 5}}), "'url' must be a string, not 5"),
        (card(input=[]), "the card.input must be an object, not a list"),
        (with_input(height=10**30), "'height' must be an integer from 1 to"),
        (with_input(height=4000, width=4000), "over the limit of 4,194,304 pixels"),
        (with_input(value_range=[0, "x"]), "'value_range' must be a list of 2 finite numbers"),
        (with_input(layout="CHWN"), "'layout' must be one of NCHW, NHWC"),
        (with_input(preprocessing={"value_range": [0, 1]}), "lacks 'channel_order'"),
        (with_layer(1, channels=-8), "'channels' must be an integer from 1 to"),
        (with_layer(1, field={"size": [1, 2]}), "lacks 'jump'"),
        (card(schema=[2]), "model metadata schema [2] is not one this version reads"),
    ],
)
def test_malformed_cards_are_model_format_errors(text, message):
    """Bug: a card that was a JSON list raised AttributeError, deep nesting RecursionError,
    too few labels an IndexError later on."""
    with pytest.raises(ModelFormatError) as caught:
        ModelInfo.from_json(text)
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (with_layer(2, channels=13), "says layer late channels = 13 but the graph's is 12"),
        (with_layer(1, height=11), "says layer early height = 11 but the graph's is 10"),
        (card(num_classes=7, labels=None), "class output probs classes = 7 but the graph's is 6"),
        (card(num_classes=None, labels=["a", "b"]), "probs classes = 2 but the graph's is 6"),
        (with_input(width=20), "says input pixels_in width = 20 but the graph's is 16"),
    ],
)
def test_a_card_the_graph_contradicts_is_refused_on_load(tmp_path, text, message):
    """Bug: channel counts were never checked against the graph, so a wrong card failed later
    with an IndexError, or drew wrong pictures."""
    path = tiny_model.write_tiny_model(tmp_path / "variant.onnx", metadata=text)
    with pytest.raises(ModelFormatError) as caught:
        load_model(path)
    assert message in str(caught.value)


JUNK = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(),
    st.text(max_size=8),
    st.lists(st.one_of(st.integers(-3, 3), st.text(max_size=3)), max_size=4),
    st.dictionaries(st.sampled_from(["name", "url", "size", "x"]), st.integers(), max_size=2),
)
PATHS = [
    ("schema",), ("network",), ("source_sha256",), ("replica",), ("class_output",),
    ("num_classes",), ("labels",), ("labels", 0), ("spritemaps",), ("input",), ("layers",),
    ("layers", 0), ("input", "name"), ("input", "height"), ("input", "width"),
    ("input", "value_range"), ("input", "network_range"), ("input", "variable_size"),
    ("input", "min_side"), ("input", "stride"), ("input", "layout"), ("input", "preprocessing"),
    ("layers", 1, "name"), ("layers", 1, "channels"), ("layers", 1, "height"),
    ("layers", 1, "layout"), ("layers", 1, "extra_tokens"), ("layers", 1, "field"),
    ("layers", 1, "tensor"),
]  # fmt: skip


def mutate(raw: dict, path: tuple, value: object) -> None:
    """Replace (or with "delete", remove) the field at `path` of `raw`, where it exists."""
    parent = raw
    for key in path[:-1]:
        if (
            isinstance(parent, dict)
            and key in parent
            or (isinstance(parent, list) and isinstance(key, int) and key < len(parent))
        ):
            parent = parent[key]
        else:
            return
    last = path[-1]
    if isinstance(parent, list) and not (isinstance(last, int) and last < len(parent)):
        return
    if not isinstance(parent, (dict, list)):
        return
    if value == "delete":
        parent.pop(last) if isinstance(parent, list) else parent.pop(last, None)
    else:
        parent[last] = value


@settings(max_examples=400, deadline=None, derandomize=True, database=None)
@given(st.lists(st.tuples(st.sampled_from(PATHS), st.one_of(st.just("delete"), JUNK)),
                min_size=1, max_size=3))  # fmt: skip
def test_fuzzed_cards_raise_only_model_format_errors(mutations):
    raw = json.loads(json.dumps(GOOD))
    raw["input"]["preprocessing"] = {"value_range": [0, 1], "channel_order": "RGB"}
    raw["layers"][1]["field"] = {"size": [3, 3], "jump": [2, 2], "start": [0.5, 0.5]}
    for path, value in mutations:
        mutate(raw, path, value)
    try:
        info = ModelInfo.from_json(json.dumps(raw))
    except ModelFormatError:
        return
    for layer in info.layers:  # what the runtime then reads of a card it accepted
        assert info.layer(layer.name).channels >= 1
    assert info.input.describe_sizes() and info.weights_note
    assert info.input.check_size(*info.input.default_size) == info.input.default_size


def test_the_fuzz_reaches_cards_that_load():
    """The fuzz would prove little if every mutation were refused: some harmless ones load."""
    info = ModelInfo.from_json(card(network="Other", labels=None, num_classes=None))
    assert info.network == "Other" and info.labels is None
