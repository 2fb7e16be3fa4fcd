"""Progress bars: the one place that decides which tqdm bar every loop of the package shows.

In a Jupyter kernel `tqdm.auto` picks tqdm's notebook bar, an ipywidgets widget; where
ipywidgets is not installed it prints a red "TqdmWarning: IProgress not found" on every run
before falling back to the plain bar. So the notebook bar is asked for only where ipywidgets
can be imported; everywhere else the bar is tqdm's plain one (text on stderr), which never
warns. Outside a kernel `tqdm.auto` is the plain bar anyway.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterable
from typing import Any, TypeVar

from tqdm.std import tqdm

Item = TypeVar("Item")


def widgets_available() -> bool:
    """True where ipywidgets can be imported (without importing it)."""
    try:
        return importlib.util.find_spec("ipywidgets") is not None
    except (ImportError, ValueError):  # ValueError: sys.modules["ipywidgets"] is None
        return False


def progress_bar(iterable: Iterable[Item] | None = None, **options: Any) -> tqdm:
    """A tqdm bar over `iterable` (tqdm's options, e.g. total, desc, disable).

    The notebook widget bar where ipywidgets is importable and this runs in a kernel, else the
    plain bar.
    """
    if widgets_available():
        from tqdm.auto import tqdm as auto_bar

        return auto_bar(iterable, **options)
    return tqdm(iterable, **options)
