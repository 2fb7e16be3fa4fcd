"""The exceptions semdict_onnx raises: each says what was wrong and what to do."""

from __future__ import annotations


class SemdictError(Exception):
    """Base class of every error this package raises on purpose."""


class ModelNotFoundError(SemdictError, FileNotFoundError):
    """No exported ONNX model where one was expected."""


class ModelFormatError(SemdictError, ValueError):
    """A file that is not an ONNX model exported by scripts/export.py."""


class UnknownLayerError(SemdictError, ValueError):
    """A layer name the model does not have."""


class ImageError(SemdictError, ValueError):
    """An image that cannot be read or used."""


class ProviderError(SemdictError, RuntimeError):
    """An execution provider that was asked for but cannot run here."""


class DownloadError(SemdictError, OSError):
    """A download that failed, was cut short, or did not match its checksum."""


class SpritemapError(SemdictError, ValueError):
    """A spritemap that cannot be read, or does not fit the layer it is used for."""
