"""Imports TensorFlow (and tf2onnx) for the export with their log noise turned down.

TensorFlow writes INFO lines about oneDNN and missing CUDA drivers from C++ before its
log-level settings apply, so the import runs with the process's stderr pointed at
/dev/null; Python exceptions are unaffected and still reach the user. Where the `export` extra
is not installed, the import fails with ExportDependencyError saying what to install.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator
from types import ModuleType

from ._errors import export_extra_needed


@contextlib.contextmanager
def _stderr_silenced() -> Iterator[None]:
    """Point file descriptor 2 at /dev/null for the duration of the block."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


def import_tensorflow() -> ModuleType:
    """TensorFlow, imported quietly, with its Python logger at ERROR."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    with export_extra_needed(), _stderr_silenced():
        import tensorflow as tf
    tf.get_logger().setLevel(logging.ERROR)
    return tf


def import_tf2onnx() -> ModuleType:
    """tf2onnx (and TensorFlow), imported quietly, with tf2onnx's logger at ERROR."""
    import_tensorflow()
    with export_extra_needed(), _stderr_silenced():
        import tf2onnx
    tf2onnx.logging.set_level(logging.ERROR)
    return tf2onnx
