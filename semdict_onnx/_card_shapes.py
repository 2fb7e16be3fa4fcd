"""A model card checked against its graph wherever the graph states a size.

A card may come from anyone, and a wrong channel count or layer size would otherwise surface
much later as an IndexError or as wrong pictures, so `load_model` (_model.py) refuses, with a
ModelFormatError naming the field, a card that the ONNX graph's input and output shapes
contradict. Dimensions the graph leaves open (a variable size, a symbolic batch) are not
checked.
"""

from __future__ import annotations

from pathlib import Path

from ._metadata import ModelInfo
from .errors import ModelFormatError


def check_card_shapes(
    info: ModelInfo, input_shape: list, output_shapes: dict[str, list], path: Path
) -> None:
    """Refuse a card whose sizes the graph contradicts, wherever the graph states a size.

    The image input is [N, H, W, 3], fixed at the default size unless the card says it takes
    others; each layer [N, H, W, channels] (H and W those at the default size when the graph
    states them); the class output [N, classes], with a label per class.
    """
    stated: list[tuple[str, object, object]] = [
        (f"input {info.input.name} channels", 3, input_shape[3])
    ]
    if not info.input.variable_size:
        stated += [
            (f"input {info.input.name} height", info.input.height, input_shape[1]),
            (f"input {info.input.name} width", info.input.width, input_shape[2]),
        ]
    for layer in info.layers:
        shape = output_shapes[layer.name]
        if len(shape) != 4:
            raise ModelFormatError(
                f"{path}: layer {layer.name!r} is {shape} in the graph, not [N, H, W, C]; "
                "re-export or prepare the model again"
            )
        stated += [
            (f"layer {layer.name} channels", layer.channels, shape[3]),
            (f"layer {layer.name} height", layer.height, shape[1]),
            (f"layer {layer.name} width", layer.width, shape[2]),
        ]
    if info.class_output:
        shape = output_shapes[info.class_output]
        classes = (
            info.num_classes if info.num_classes is not None else info.labels and len(info.labels)
        )
        stated.append(
            (f"class output {info.class_output} classes", classes, shape[-1] if shape else None)
        )
    for what, card, graph in stated:
        if isinstance(graph, int) and graph > 0 and card is not None and card != graph:
            raise ModelFormatError(
                f"{path}: its metadata says {what} = {card} but the graph's is {graph}; the "
                "card does not describe this graph: re-export it with `python scripts/export.py` "
                "or prepare it again"
            )
