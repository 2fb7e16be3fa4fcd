"""The model card in and out of an ONNX model: the one writer every card goes through.

`prepare_model` (semdict_onnx/_prepare.py) and the GoogLeNet export
(semdict_onnx/export/_pipeline.py) build a `ModelInfo` (semdict_onnx/_metadata.py) and store it
with `write_card`; `card_of` reads it back from a ModelProto (None: a raw network), and
`read_labels` reads and checks the class names a card carries, from a list or a text file.
It works on onnx.ModelProto objects without importing onnx.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ._metadata import METADATA_KEY, ModelInfo
from .errors import PrepareError


def write_card(model: Any, info: ModelInfo) -> None:
    """Store `info` in the onnx.ModelProto `model`: its JSON under METADATA_KEY (replacing a
    card already there) and its weights note as the model's doc string."""
    for prop in list(model.metadata_props):
        if prop.key == METADATA_KEY:
            model.metadata_props.remove(prop)
    model.metadata_props.add(key=METADATA_KEY, value=info.to_json())
    model.doc_string = info.weights_note


def card_of(model: Any) -> ModelInfo | None:
    """The card stored in the onnx.ModelProto `model`, or None where it has none (raw)."""
    for prop in model.metadata_props:
        if prop.key == METADATA_KEY:
            return ModelInfo.from_json(prop.value)
    return None


def read_labels(
    labels: Sequence[str] | str | os.PathLike[str], classes: int | None, class_output: str | None
) -> tuple[str, ...]:
    """Class names from a list or a UTF-8 text file (one per line, trailing blank lines
    dropped), checked to number `classes`, the width of the class output `class_output`."""
    if isinstance(labels, (str, os.PathLike)):
        path = Path(labels).expanduser()
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise PrepareError(
                f"cannot read the labels file {str(path)!r} ({exc}); pass a UTF-8 text file of "
                "one class name per line, or a list of names"
            ) from exc
        while lines and not lines[-1].strip():
            lines.pop()
        where = f"the labels file {str(path)!r} has {len(lines)} lines"
    else:
        lines = [str(label) for label in labels]
        where = f"{len(lines)} labels were given"
    if len(lines) != classes:
        raise PrepareError(f"{where} but class output {class_output!r} has {classes} classes")
    return tuple(lines)
