"""semdict_onnx: semantic dictionaries of a vision network's activations, on ONNX Runtime.

Public names are imported lazily, so `import semdict_onnx` stays light (no onnxruntime,
no TensorFlow) until a name is used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_PUBLIC = {
    "load_model": "model",
    "Model": "model",
    "semantic_dict": "_pipeline",
    "show_semantic_dict": "_display",
    "SemanticDict": "_results",
    "Spritemap": "spritemap",
    "build_spritemap": "dataset_examples",
    "fit_basis": "bases",
    "Basis": "bases",
    "gallery": "_pipeline",
    "Gallery": "_results",
}

__all__ = sorted(_PUBLIC)

if TYPE_CHECKING:
    from ._display import show_semantic_dict  # noqa: F401
    from ._pipeline import gallery, semantic_dict  # noqa: F401
    from ._results import Gallery, SemanticDict  # noqa: F401
    from .bases import Basis, fit_basis  # noqa: F401
    from .dataset_examples import build_spritemap  # noqa: F401
    from .model import Model, load_model  # noqa: F401
    from .spritemap import Spritemap  # noqa: F401


def __getattr__(name: str) -> Any:
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'semdict_onnx' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(list(globals()) + list(_PUBLIC))
