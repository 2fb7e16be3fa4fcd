"""Where semdict_onnx keeps its files.

An argument, else $SEMDICT_ONNX_HOME, else a persistent folder in the home (never /tmp);
and `local_path`, which reads a path or a `file:` URL the same way everywhere.
"""

from __future__ import annotations

import os
import urllib.parse
import urllib.request
from pathlib import Path

from .errors import OptionError

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


def local_path(source: str | os.PathLike[str]) -> Path:
    """A local path as a Path (~ expanded), a `file:` URL as the path it names (decoded).

    `file:///tmp/a%20b.jpg` and `file://localhost/tmp/a b.jpg` are /tmp/a b.jpg; a file URL
    naming another host is refused, since only local files can be read.
    """
    if isinstance(source, str) and source[:5].lower() == "file:":
        parts = urllib.parse.urlsplit(source)
        if parts.netloc not in ("", "localhost"):
            raise OptionError(
                f"{source!r} names a file on the host {parts.netloc!r}; only local files can "
                "be read (file:///path, or the path itself)"
            )
        return Path(urllib.request.url2pathname(parts.path))
    return Path(source).expanduser()
