"""Notebook display: `show_semantic_dict` makes a dictionary and shows it through IPython.

IPython is a dependency of this package; outside a notebook its `display` prints the repr.
It returns None, so a notebook cell ending in the call shows the dictionary once (a returned
object would show a second time as the cell's Out[]); `semantic_dict` gives the object.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from IPython.display import display

from ._defaults import DEFAULT_TOP_K
from ._images import ImageSource
from ._model import Model
from ._pipeline import SpritemapSpec, semantic_dict


def show_semantic_dict(
    image: ImageSource,
    layer: str | None = None,
    model: Model | None = None,
    top_k: int = DEFAULT_TOP_K,
    spritemap: SpritemapSpec | Sequence[SpritemapSpec] | None = None,
    **options: Any,
) -> None:
    """Like `semantic_dict` (same options), and display the result through IPython.

    Returns None, so the dictionary shows once even as a cell's last line; to keep the object
    (to save it, or read its tables), call `semantic_dict` and display that.
    """
    display(semantic_dict(image, layer, model, top_k, spritemap, **options))
