"""Where semdict_onnx keeps its files.

An argument, else $SEMDICT_ONNX_HOME, else a persistent folder in the home (never /tmp).
"""

from __future__ import annotations

import os
from pathlib import Path

HOME_ENV = "SEMDICT_ONNX_HOME"
DEFAULT_MODEL_NAME = "googlenet.onnx"
GRAPHDEF_NAME = "InceptionV1.pb"


def data_dir(override: str | os.PathLike[str] | None = None) -> Path:
    """The persistent folder for models and downloads (never /tmp, which gets wiped)."""
    if override is not None:
        return Path(override).expanduser()
    if os.environ.get(HOME_ENV):
        return Path(os.environ[HOME_ENV]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "semdict_onnx"


def default_model_path(override_dir: str | os.PathLike[str] | None = None) -> Path:
    """The file `scripts/export.py` writes by default and `load_model()` reads by default."""
    return data_dir(override_dir) / DEFAULT_MODEL_NAME
