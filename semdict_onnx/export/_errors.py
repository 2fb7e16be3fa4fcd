"""The exceptions the export raises, each also the built-in a caller would catch, and its warning.

They live here, not in semdict_onnx.errors, because only the export raises them; this module
imports no TensorFlow, so `except ConversionError` costs nothing when TensorFlow is absent.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from semdict_onnx.errors import SemdictError

# What to install when the export's dependencies are missing.
INSTALL_HINT = "pip install 'semdict_onnx[export]'"
# The packages the `export` extra adds to the runtime's (requests comes with pooch).
EXPORT_ONLY_PACKAGES = ("tensorflow", "tf2onnx", "pooch", "requests")


class ExportDependencyError(SemdictError, ImportError):
    """TensorFlow, tf2onnx or pooch, which only the export needs, is not installed."""


class GraphDefNotFoundError(SemdictError, FileNotFoundError):
    """No source GraphDef at the path given."""


class ConversionError(SemdictError, ValueError):
    """The source graph could not be read or converted into a valid ONNX model."""


class LabelsError(SemdictError, ValueError):
    """A class-labels file that is missing or does not fit the model."""


class ParityError(SemdictError, RuntimeError):
    """The exported model does not reproduce TensorFlow's results."""


class FixedSizeWarning(UserWarning):
    """The source graph's class head is not Lucid's, so the model takes 224x224 images only."""


@contextlib.contextmanager
def export_extra_needed() -> Iterator[None]:
    """Turn the import of a missing export-only package into an ExportDependencyError."""
    try:
        yield
    except ModuleNotFoundError as exc:
        missing = (exc.name or "").split(".")[0]
        if missing not in EXPORT_ONLY_PACKAGES:
            raise
        raise ExportDependencyError(
            f"the export needs {missing}, which is not installed here: {INSTALL_HINT} "
            "(the runtime runs exported models without it)"
        ) from exc
