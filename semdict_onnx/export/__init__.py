"""The export: Lucid's GoogLeNet from its TensorFlow GraphDef to the ONNX model the runtime runs.

Only this subpackage uses TensorFlow and tf2onnx (and pooch for downloads), all of which
come with the `export` extra (`pip install 'semdict_onnx[export]'`); they are imported when an
export starts, not when this package is imported, so `semdict export --help` is instant and,
without the extra, an export says what to install. Run it as `semdict export ...`,
`python -m semdict_onnx.export ...`, or `python scripts/export.py ...` from a clone.

Modules (all private; the public names are below):

- `_cli`: the command line (`semdict export`, `python -m semdict_onnx.export`)
- `_pipeline`: one export in order: source graph and labels, convert, optimize, describe,
  check, write
- `_googlenet`: the network's facts: URLs, input and value ranges, outputs, spritemaps (no TF)
- `_convert`: GraphDef -> ONNX with tf2onnx, any input size, shapes, the model card
- `_optimize`: graph rewrites that make ONNX Runtime faster with the same results (LRN)
- `_parity`: ONNX Runtime against TensorFlow, layer by layer; the test images
- `_replica`: the replica GraphDef (same structure, seeded random weights)
- `_download`: cached, SHA-256-verified downloads through pooch (no TF)
- `_tf_env`: importing TensorFlow and tf2onnx quietly, or a clear error without them
- `_errors`: the export's exceptions (no TF)
"""

from __future__ import annotations

from ._cli import main
from ._errors import (
    ConversionError,
    ExportDependencyError,
    FixedSizeWarning,
    GraphDefNotFoundError,
    LabelsError,
    ParityError,
)
from ._pipeline import ExportResult, export_graphdef

__all__ = [
    "ConversionError",
    "ExportDependencyError",
    "ExportResult",
    "FixedSizeWarning",
    "GraphDefNotFoundError",
    "LabelsError",
    "ParityError",
    "export_graphdef",
    "main",
]
