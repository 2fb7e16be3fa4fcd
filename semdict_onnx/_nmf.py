"""NMF of a layer's activations: groups of one image, and dictionaries fitted over many.

`factorize` splits one image's activations (positions x channels) into NMF groups with
scikit-learn's NMF, as in "The Building Blocks of Interpretability"; `fit_basis` fits one
dictionary over many images with scikit-learn's MiniBatchNMF in bounded memory (the images
are read and run in batches by _image_scan.py), or over a dataset scan's uniform sample of
activation vectors (_activation_sample.py). Both return a `Basis` (_bases.py) of
unit-length directions. scikit-learn is imported only when they are called.
"""

from __future__ import annotations

import contextlib
import math
import os
import warnings
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

from ._activation_sample import ActivationSample
from ._bases import NMF_METHOD, Basis
from ._checks import positive_int
from ._defaults import DEFAULT_BATCH_SIZE, DEFAULT_GROUPS
from ._image_scan import ScanReport, scan_layer
from .errors import ActivationsError, OptionError

if TYPE_CHECKING:
    from sklearn.decomposition import MiniBatchNMF

    from ._model import Model

NMF_INIT = "nndsvda"
NMF_SEED = 0
NMF_MAX_ITER = 400
NMF_TOL = 1e-4
MINIBATCH_POSITIONS = 256
# A group whose share of the factorization (|weights| x |direction|) is below this fraction of
# the largest group's is empty: NMF had no pattern left to put in it.
EMPTY_GROUP_SHARE = 1e-6


def factorize(
    activations: np.ndarray,
    n_groups: int = DEFAULT_GROUPS,
    *,
    layer: str | None = None,
    seed: int = NMF_SEED,
) -> tuple[Basis, np.ndarray]:
    """NMF of one image's [rows, cols, channels] activations: its groups and their coefficients.

    Returns the groups as a Basis (unit-length directions, strongest group first) and the
    coefficients [rows, cols, k] (its projection of the activations). Groups NMF leaves empty,
    where the layer holds fewer patterns than asked for, are dropped, so k can be smaller.
    """
    from sklearn.decomposition import NMF
    from sklearn.exceptions import ConvergenceWarning

    acts = np.asarray(activations, dtype=np.float32)
    if acts.ndim != 3 or 0 in acts.shape:
        raise ActivationsError(
            f"factorize takes one image's activations [rows, cols, channels], not {acts.shape}"
        )
    flat = acts.reshape(-1, acts.shape[2])
    _check_components(n_groups, min(flat.shape), "n_groups", f"{flat.shape[0]} positions")
    _check_factorizable(flat)
    model = NMF(
        n_components=n_groups,
        init=NMF_INIT,
        random_state=seed,
        max_iter=NMF_MAX_ITER,
        tol=NMF_TOL,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        weights = model.fit_transform(flat)
    share = np.linalg.norm(weights, axis=0) * np.linalg.norm(model.components_, axis=1)
    used = share > EMPTY_GROUP_SHARE * share.max()
    basis = Basis(
        _unit_rows(model.components_[used]), layer=layer, method=NMF_METHOD, images_seen=1
    )
    coefficients = basis.project(acts)
    order = np.argsort(-coefficients.reshape(-1, basis.k).sum(axis=0), kind="stable")
    basis = Basis(basis.components[order], layer=layer, method=NMF_METHOD, images_seen=1)
    return basis, np.ascontiguousarray(coefficients[..., order])


def fit_basis(
    images: Any,
    layer: str,
    n_components: int = DEFAULT_GROUPS,
    method: str = NMF_METHOD,
    model: Model | str | os.PathLike[str] | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: bool = True,
    *,
    passes: int = 1,
    seed: int = NMF_SEED,
) -> Basis:
    """Fit a dictionary of `n_components` NMF directions of `layer` over many images.

    `images` is a folder, a list of paths or any iterable of images, as for build_spritemap:
    the model runs in batches and every position of every image is a sample. Or it is the
    `sample` of a scan_dataset state (an ActivationSample of `layer`): its vectors, drawn
    uniformly from every position of a dataset in the same pass that made a spritemap, are
    the samples, and the model is not run. Samples go to scikit-learn's MiniBatchNMF in
    shuffled chunks of MINIBATCH_POSITIONS, so memory stays bounded. `passes` > 1 goes over
    the samples again (running the model again, for images) to refine it.
    """
    from sklearn.decomposition import MiniBatchNMF

    if method != NMF_METHOD:
        raise OptionError(f"fit_basis knows method={NMF_METHOD!r} only, not {method!r}")
    positive_int(passes, "passes")
    if passes > 1 and isinstance(images, Iterator):
        raise OptionError(
            "passes > 1 reads the images more than once, which a one-shot iterator cannot do; "
            "pass a folder or a list"
        )
    if isinstance(images, ActivationSample):
        channels, samples, seen = _sample_passes(images, layer, passes)
    else:
        channels, samples, seen = _scanned_passes(
            images, layer, model, batch_size, progress, passes
        )
    _check_components(n_components, channels, "n_components", f"{layer} has {channels} channels")
    nmf = MiniBatchNMF(
        n_components=n_components, init=NMF_INIT, batch_size=MINIBATCH_POSITIONS, random_state=seed
    )
    rng = np.random.default_rng(seed)
    pending = np.empty((0, channels), np.float32)
    with contextlib.closing(samples):  # on an error or Ctrl-C here, a scan's thread stops now
        for flat in samples:
            pending = np.concatenate([pending, flat])
            pending = pending[rng.permutation(len(pending))]
            while len(pending) >= MINIBATCH_POSITIONS:
                _step(nmf, pending[:MINIBATCH_POSITIONS])
                pending = pending[MINIBATCH_POSITIONS:]
    if len(pending):
        _step(nmf, pending)
    if not hasattr(nmf, "components_"):
        raise ActivationsError(
            f"the {seen()} images have fewer than {n_components} positions where {layer} is not "
            "all zero, too few to fit that many components; give more images or ask for fewer"
        )
    return Basis(_unit_rows(nmf.components_), layer=layer, method=NMF_METHOD, images_seen=seen())


def _sample_passes(
    sample: ActivationSample, layer: str, passes: int
) -> tuple[int, Iterator[np.ndarray], Callable[[], int]]:
    """A sample's channels, its vectors once per pass, and its number of images."""
    if sample.layer != layer:
        raise OptionError(
            f"this sample is of layer {sample.layer!r}, not {layer!r}; fit the layer it was "
            "drawn from, or scan the images again for this one"
        )
    return sample.channels, (sample.vectors for _ in range(passes)), lambda: sample.images_seen


def _scanned_passes(
    images: Any,
    layer: str,
    model: Model | str | os.PathLike[str] | None,
    batch_size: int,
    progress: bool,
    passes: int,
) -> tuple[int, Iterator[np.ndarray], Callable[[], int]]:
    """The layer's channels, every position's activations pass after pass (the model run
    in batches), and the number of images the last pass read."""
    from ._model import as_model

    model = as_model(model)
    channels = model.info.layer(layer).channels
    reports: list[ScanReport] = []

    def flat_batches() -> Iterator[np.ndarray]:
        for number in range(1, passes + 1):
            reports.append(ScanReport())
            desc = f"NMF {layer}" + (f" pass {number}/{passes}" if passes > 1 else "")
            scan = scan_layer(
                images, model, layer, reports[-1], batch_size=batch_size, progress=progress,
                desc=desc, stacklevel=4,
            )  # fmt: skip
            with contextlib.closing(scan):
                for _, acts in scan:
                    yield acts.reshape(-1, channels)

    return channels, flat_batches(), lambda: reports[-1].images_seen if reports else 0


def _step(nmf: MiniBatchNMF, samples: np.ndarray) -> None:
    """One MiniBatchNMF update on the samples (positions x channels) that are not all zero."""
    from sklearn.exceptions import ConvergenceWarning

    _check_non_negative(samples)
    samples = samples[samples.any(axis=1)]
    if len(samples) == 0 or (not hasattr(nmf, "components_") and len(samples) < nmf.n_components):
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        nmf.partial_fit(samples)


def _check_components(count: Any, most: int, name: str, why: str) -> None:
    """Refuse a component count that is not an integer from 1 to `most`."""
    if positive_int(count, name) > most:
        raise OptionError(f"{name}={count} is more than NMF can find here ({why}); ask for fewer")


def _check_factorizable(flat: np.ndarray) -> None:
    """NMF needs non-negative activations that are not all zero."""
    _check_non_negative(flat)
    if not flat.any():
        raise ActivationsError("the activations are zero everywhere: there is nothing to factorize")


def _check_non_negative(flat: np.ndarray) -> None:
    """NMF needs non-negative activations."""
    lowest = float(flat.min())
    if lowest < 0:
        raise ActivationsError(
            f"NMF needs non-negative activations, and these go down to {lowest:.4g}; use a "
            "layer after a ReLU, or a given basis (projected by non-negative least squares)"
        )


def _unit_rows(components: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length; rows of (numerically) zero length are dropped."""
    norms = np.linalg.norm(components, axis=1)
    keep = norms > EMPTY_GROUP_SHARE * max(float(norms.max()), math.ulp(1.0))
    return (components[keep] / norms[keep, None]).astype(np.float32)
