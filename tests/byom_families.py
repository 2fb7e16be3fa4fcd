"""The three model families as tests use them: how to build, prepare and check each by hand.

`reference` feeds the UNPREPARED file to ONNX Runtime with the preprocessing done in numpy
(the way its users feed it), and returns the chosen tensors as [N, H, W, C]: transposed from
NCHW, or tokens without their class token reshaped to the patch grid.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import model_families as mf
import numpy as np
import onnx
import onnxruntime as ort

from semdict_onnx._metadata import ModelInfo, Preprocessing
from semdict_onnx._prepare import prepare_model


@dataclass(frozen=True)
class Family:
    """One family: its builder, layers, prepare options and how its tensors are laid out."""

    build: Callable[[Path], Path]
    layers: dict[str, str]
    options: dict
    input_name: str
    layout: str  # the input's
    layer_layouts: dict[str, str]
    size: tuple[int, int]
    strides: dict[str, int]
    class_tensor: str
    logits: bool
    extra_tokens: int = 0
    labels: tuple[str, ...] = field(default=())

    @property
    def preprocessing(self) -> Preprocessing:
        base = self.options.get("preprocessing")
        found = Preprocessing.preset(base) if isinstance(base, str) else Preprocessing()
        return found.with_overrides(mean=self.options.get("mean"), std=self.options.get("std"))


RESNET_LABELS = tuple(f"class {i}" for i in range(mf.RESNET_CLASSES))
FAMILIES = {
    "resnet": Family(
        build=mf.build_resnet,
        layers=mf.RESNET_LAYERS,
        options=dict(
            preprocessing="torchvision", class_output=mf.RESNET_LOGITS, logits=True,
            labels=list(RESNET_LABELS),
        ),
        input_name="input",
        layout="NCHW",
        layer_layouts=dict.fromkeys(mf.RESNET_LAYERS, "NCHW"),
        size=(224, 224),
        strides={"stem": 2, "layer1": 4, "layer2": 8},
        class_tensor=mf.RESNET_LOGITS,
        logits=True,
        labels=RESNET_LABELS,
    ),
    "keras": Family(
        build=mf.build_keras,
        layers=mf.KERAS_LAYERS,
        options=dict(preprocessing="caffe", class_output=mf.KERAS_PROBS),
        input_name="input_1",
        layout="NHWC",
        layer_layouts={"block1_conv1": "NCHW", "block2_conv1": "NCHW", "block2_relu6": "NHWC"},
        size=mf.KERAS_SIZE,
        strides={"block1_conv1": 1, "block2_conv1": 2, "block2_relu6": 2},
        class_tensor=mf.KERAS_PROBS,
        logits=False,
    ),
    "vit": Family(
        build=mf.build_vit,
        layers=mf.VIT_LAYERS,
        options=dict(
            mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), class_output=mf.VIT_LOGITS, logits=True
        ),
        input_name="pixel_values",
        layout="NCHW",
        layer_layouts=dict.fromkeys(mf.VIT_LAYERS, "tokens"),
        size=(mf.VIT_SIZE, mf.VIT_SIZE),
        strides=dict.fromkeys(mf.VIT_LAYERS, mf.VIT_PATCH),
        class_tensor=mf.VIT_LOGITS,
        logits=True,
        extra_tokens=1,
    ),
}  # fmt: skip


def reference(family: Family, path: Path, images: np.ndarray) -> dict[str, np.ndarray]:
    """ONNX Runtime on the unprepared file: the family's layers ([N, H, W, C]) and its class
    tensor, for NHWC RGB `images` in [0, 1] preprocessed by hand."""
    raw = onnx.load(str(path))
    tensors = [*family.layers.values(), family.class_tensor]
    del raw.graph.output[:]
    for name in tensors:
        raw.graph.output.append(onnx.ValueInfoProto(name=name))
    session = ort.InferenceSession(raw.SerializeToString(), providers=["CPUExecutionProvider"])
    batch = family.preprocessing.apply(images)
    if family.layout == "NCHW":
        batch = np.ascontiguousarray(batch.transpose(0, 3, 1, 2))
    values = dict(zip(tensors, session.run(tensors, {family.input_name: batch}), strict=True))
    result = {family.class_tensor: values[family.class_tensor]}
    for short, tensor in family.layers.items():
        value = values[tensor]
        layout = family.layer_layouts[short]
        if layout == "NCHW":
            value = value.transpose(0, 2, 3, 1)
        elif layout == "tokens":
            side = int(round((value.shape[1] - family.extra_tokens) ** 0.5))
            value = value[:, family.extra_tokens :].reshape(len(value), side, side, -1)
        result[short] = value
    return result


def build_all(folder: Path) -> dict[str, tuple[Path, Path, ModelInfo]]:
    """Each family's raw file in `folder`, prepared with its options: (raw, prepared, card)."""
    result = {}
    for name, family in FAMILIES.items():
        raw = family.build(folder / f"{name}.onnx")
        prepared = folder / f"{name}-prepared.onnx"
        info = prepare_model(raw, prepared, family.layers, **family.options)
        result[name] = (raw, prepared, info)
    return result


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


# The planted pictures: (image, the planted square as (left, top, right, bottom) in its pixels).
# The resnet's is 448 x 336 (w x h), so the runtime resizes it to 224 x 224 and crops must
# scale back; the others are at their input size.
def planted_picture(name: str) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """A black picture with the family's planted pattern at a known, off-diagonal place."""
    if name == "resnet":
        image = np.zeros((336, 448, 3), np.uint8)
        box = (300, 60, 332, 84)  # 32 x 24 image px -> 16 x 16 input px at (150, 40)
        image[box[1] : box[3], box[0] : box[2]] = 255
    elif name == "keras":
        image = np.zeros((*mf.KERAS_SIZE, 3), np.uint8)
        box = (30, 10, 40, 20)
        image[box[1] : box[3], box[0] : box[2]] = (255, 0, 0)  # red: channel 0 answers it
        image[30:40, 5:15] = (0, 0, 255)  # blue: it would answer this if BGR were ignored
    else:
        image = np.zeros((mf.VIT_SIZE, mf.VIT_SIZE, 3), np.uint8)
        box = (24, 8, 32, 16)  # patch (row 1, col 3)
        image[box[1] : box[3], box[0] : box[2]] = 255
    return image, box
