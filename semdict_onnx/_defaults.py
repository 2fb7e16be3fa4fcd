"""Defaults shared by the functions and the command line, each defined once."""

from __future__ import annotations

# The layer a dictionary shows unless told otherwise, where the model has it (GoogLeNet's, as in
# Lucid's notebook); other models show the last layer their card lists (ModelInfo.default_layer).
DEFAULT_LAYER = "mixed4d"
# Entries shown per position.
DEFAULT_TOP_K = 4
# NMF groups fitted on one image, and directions fitted over many (fit_basis).
DEFAULT_GROUPS = 6
# Images per model call when many are read (Model.activations, build_spritemap, fit_basis).
DEFAULT_BATCH_SIZE = 16
