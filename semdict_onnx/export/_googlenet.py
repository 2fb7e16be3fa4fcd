"""The facts about Lucid's GoogLeNet (InceptionV1) that the export writes into the model.

Plain data, no TensorFlow: where the graph and its labels live, its input and value
ranges, the exported outputs, the replica's class count, and the public spritemaps of its
channels.
"""

from __future__ import annotations

import numpy as np

from semdict_onnx import _paths as paths
from semdict_onnx._metadata import SpritemapInfo

MODELZOO = "https://storage.googleapis.com/modelzoo"
GRAPHDEF_URL = f"{MODELZOO}/{paths.GRAPHDEF_NAME}"
LABELS_NAME = "InceptionV1-labels.txt"
LABELS_URL = f"{MODELZOO}/{LABELS_NAME}"
NETWORK = "InceptionV1"
REPLICA_NETWORK = "InceptionV1 replica (random weights)"

SOURCE_INPUT = "input"
INPUT_NAME = "image"
INPUT_SIZE = 224
VALUE_RANGE = (0.0, 1.0)
NETWORK_RANGE = (-117.0, 138.0)
ACTIVATION_LAYERS = (
    "mixed3a",
    "mixed3b",
    "mixed4a",
    "mixed4b",
    "mixed4c",
    "mixed4d",
    "mixed4e",
    "mixed5a",
    "mixed5b",
)
CLASS_OUTPUT = "softmax2"
# Lucid's labels: 1008 classes, index 0 a dummy; the replica builds a head of that width.
NUM_CLASSES = 1008
# The 7x7 VALID average pool (global at 224x224) between mixed5b and softmax2's reshape.
CLASS_POOL = "avgpool0"
OUTPUTS = (*ACTIVATION_LAYERS, CLASS_OUTPUT)

SPRITEMAP_URL = (
    "https://storage.googleapis.com/lucid-static/building-blocks/googlenet_spritemaps/"
    "sprite_{layer}_channel_alpha.jpeg"
)
SPRITES_PER_ROW = {
    "mixed3a": 16,
    "mixed3b": 21,
    "mixed4a": 22,
    "mixed4b": 22,
    "mixed4c": 22,
    "mixed4d": 22,
    "mixed4e": 28,
    "mixed5a": 28,
}
SPRITE_SIZE = 110


def spritemaps() -> dict[str, SpritemapInfo]:
    """The public spritemaps of the real GoogLeNet's channels (none exist for mixed5b)."""
    return {
        layer: SpritemapInfo(SPRITEMAP_URL.format(layer=layer), per_row, SPRITE_SIZE)
        for layer, per_row in SPRITES_PER_ROW.items()
    }


def to_network_range(images: np.ndarray) -> np.ndarray:
    """Images in [0, 1] -> the source graph's pixel values, `255 * x - 117` (float32)."""
    low, high = NETWORK_RANGE
    return images.astype(np.float32) * np.float32(high - low) + np.float32(low)
