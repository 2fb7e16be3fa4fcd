"""semdict_onnx: semantic dictionaries of a vision network's activations, on ONNX Runtime.

The public API is the names in `__all__`, read from here (`semdict_onnx.semantic_dict`,
`from semdict_onnx import Basis`), and the exceptions in `semdict_onnx.errors`. Every other
module is private (its name starts with an underscore) and may change without notice; no
public name is also the name of a module, so a name always means the same object whichever
was used first. Names are imported lazily, so `import semdict_onnx` stays light (no
onnxruntime, no TensorFlow) until one is used. docs/architecture.md maps the modules.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# The private module each public name lives in.
_PUBLIC_BY_MODULE = {
    "_model": ("Model", "load_model"),
    "_pipeline": ("semantic_dict", "gallery"),
    "_display": ("show_semantic_dict",),
    "_results": ("SemanticDict", "Gallery"),
    "_views": ("BasisView", "TopClass"),
    "_ranking": ("top_k_channels", "strongest_position"),
    "_images": ("load_image", "to_batch"),
    "_bases": ("Basis",),
    "_nmf": ("factorize", "fit_basis"),
    "_spritemap": ("Spritemap",),
    "_dataset_examples": ("build_spritemap", "scan_examples", "spritemap_from_examples"),
    "_dataset_scan": ("scan_dataset",),
    "_dataset_state": ("DatasetState",),
    "_engines": ("RayEngine",),
    "_top_examples": ("TopExamples",),
    "_receptive_field": ("receptive_fields",),
    "_featurevis._render": ("visualize", "render_spritemap"),
    "_featurevis._settings": ("RenderSettings",),
    "_layer_catalog": ("list_layers", "layers_table", "LayerCandidate"),
    "_prepare": ("prepare_model",),
    "_metadata": ("Preprocessing",),
}
_PUBLIC = {name: module for module, names in _PUBLIC_BY_MODULE.items() for name in names}

__all__ = sorted(_PUBLIC)

if TYPE_CHECKING:
    from ._bases import Basis  # noqa: F401
    from ._dataset_examples import (  # noqa: F401
        build_spritemap,
        scan_examples,
        spritemap_from_examples,
    )
    from ._dataset_scan import scan_dataset  # noqa: F401
    from ._dataset_state import DatasetState  # noqa: F401
    from ._display import show_semantic_dict  # noqa: F401
    from ._engines import RayEngine  # noqa: F401
    from ._featurevis._render import render_spritemap, visualize  # noqa: F401
    from ._featurevis._settings import RenderSettings  # noqa: F401
    from ._images import load_image, to_batch  # noqa: F401
    from ._layer_catalog import LayerCandidate, layers_table, list_layers  # noqa: F401
    from ._metadata import Preprocessing  # noqa: F401
    from ._model import Model, load_model  # noqa: F401
    from ._nmf import factorize, fit_basis  # noqa: F401
    from ._pipeline import gallery, semantic_dict  # noqa: F401
    from ._prepare import prepare_model  # noqa: F401
    from ._ranking import strongest_position, top_k_channels  # noqa: F401
    from ._receptive_field import receptive_fields  # noqa: F401
    from ._results import Gallery, SemanticDict  # noqa: F401
    from ._spritemap import Spritemap  # noqa: F401
    from ._top_examples import TopExamples  # noqa: F401
    from ._views import BasisView, TopClass  # noqa: F401


def __getattr__(name: str) -> Any:
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'semdict_onnx' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(list(globals()) + list(_PUBLIC))
