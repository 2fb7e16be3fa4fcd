"""The exceptions and warnings semdict_onnx raises: each says what was wrong and what to do.

Every error derives from `SemdictError` and from the built-in exception a caller would catch
for the same fault (`ValueError` for a bad value, `FileNotFoundError` for a missing model,
`OSError` for a failed download, ...), so `except ValueError` works as well as
`except SemdictError`.
"""

from __future__ import annotations


class SemdictError(Exception):
    """Base class of every error this package raises on purpose."""


class OptionError(SemdictError, ValueError, TypeError):
    """An argument a function or command does not take: a count that is not a positive
    integer, an unknown scale, a file name with the wrong suffix, ...

    Like scikit-learn's InvalidParameterError it is both a ValueError and a TypeError, since
    a wrong argument may be of the wrong value or of the wrong type.
    """


class ModelNotFoundError(SemdictError, FileNotFoundError):
    """No exported ONNX model where one was expected."""


class ModelFormatError(SemdictError, ValueError):
    """A file that is not an ONNX model exported by scripts/export.py."""


class UnknownLayerError(SemdictError, ValueError):
    """A layer name the model does not have."""


class ImageError(SemdictError, ValueError):
    """An image that cannot be read or used."""


class ActivationsError(SemdictError, ValueError):
    """Activations (or coefficients) that cannot be ranked, projected or factorized."""


class BasisError(SemdictError, ValueError):
    """A basis that cannot be made, read, or used for the layer asked for."""


class DictionaryError(SemdictError, ValueError):
    """Parts of a semantic dictionary or gallery that do not fit together."""


class ExamplesError(SemdictError, ValueError):
    """Dataset top examples that cannot be read, merged or completed."""


class ProviderError(SemdictError, RuntimeError):
    """An execution provider that was asked for but cannot run here."""


class WriteError(SemdictError, OSError):
    """An output that cannot be written: no permission, a read-only or full disk, a folder
    where a file goes or a file where a folder goes. The message names the path."""


class DownloadError(SemdictError, OSError):
    """A download that failed, was cut short, or did not match its checksum."""


class SpritemapError(SemdictError, ValueError):
    """A spritemap that cannot be read, or does not fit the layer it is used for."""


class RenderError(SemdictError, ValueError):
    """Feature-visualization settings or objectives that cannot be rendered."""


class GradientRuleError(SemdictError, NotImplementedError):
    """A graph op on the way to a layer that the feature-visualization gradient cannot pass."""


class CheckpointError(SemdictError, ValueError):
    """A checkpoint that cannot be read, or was written by a different scan."""


class MissingDependencyError(SemdictError, ImportError):
    """An optional dependency a feature needs is not installed (the error names the extra)."""


class ProviderWarning(UserWarning):
    """A provider setup that works but is probably not what the user wants."""


class PrepareError(SemdictError, ValueError):
    """Options for preparing an ONNX network that do not fit its graph (prepare_model)."""
