"""From an image to its semantic dictionary: run the model, read each basis, pick pictures.

`semantic_dict` runs the model on one image (the default model, loaded once per process,
where none is given), reads the layer in every basis asked for (the neurons; NMF groups of
this image; a given or fitted dictionary: _bases.py, _nmf.py), ranks each (_ranking.py),
chooses what pictures each basis (a spritemap given, the model's public one, or the image's
own patches) and how its bars are measured, and returns a `SemanticDict` (_results.py).
`gallery` does it for many images.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from ._bases import NEURONS, NMF_METHOD, Basis, resolve_basis
from ._channel_stats import DATASET_SCALE_QUANTILE
from ._dataset_examples import own_patches_spritemap
from ._defaults import DEFAULT_GROUPS, DEFAULT_TOP_K
from ._images import ImageSource, InputSize, is_url, load_image, source_name
from ._model import Model, default_model
from ._nmf import factorize
from ._openvino_runner import BF16, page_note
from ._overlays import MAX_GROUP_HUES
from ._picture import small_image_file
from ._progress import progress_bar
from ._ranking import check_top_k
from ._results import SCALES, Gallery, SemanticDict
from ._sprite_notes import LUCID_NOTE
from ._spritemap import Spritemap
from ._views import BasisView, TopClass
from .errors import BasisError, ImageError, OptionError, SpritemapError

if TYPE_CHECKING:
    from ._metadata import ModelInfo

TOP_CLASSES = 5

BasisSpec = str | Basis | np.ndarray
SpritemapSpec = Spritemap | str | os.PathLike[str]


def semantic_dict(
    image: ImageSource,
    layer: str | None = None,
    model: Model | None = None,
    top_k: int = DEFAULT_TOP_K,
    spritemap: SpritemapSpec | Sequence[SpritemapSpec] | None = None,
    *,
    title: str | None = None,
    basis: BasisSpec | Sequence[BasisSpec] = NEURONS,
    n_groups: int = DEFAULT_GROUPS,
    scale: str = "image",
    size: InputSize = None,
) -> SemanticDict:
    """Run the model on one image and return the layer's semantic dictionary.

    `layer` defaults to the model's `info.default_layer` (mixed4d on GoogLeNet, else the last
    layer its card lists). `model` defaults to `load_model()` (loaded once per process).
    `basis` is "neurons", "nmf" (`n_groups` groups fitted on this image), a Basis, a
    (k x channels) array, or a list of these (one page, a switch between them). `spritemap` is
    a Spritemap or the path of a saved one, or a list: each pictures the neurons or the basis
    it was built with; by default the neurons get the model's public spritemap (or numbers,
    with a note) and other bases this image's own patches. `scale` is how bars are measured:
    "image" (its largest value), "raw" or "dataset" (each direction's typical maximum in its
    spritemap's manifest). `size` is the input size: None (the image's aspect ratio at the
    model's default shorter side, e.g. 224, or a fixed-size model's own size), an int keeping
    the aspect ratio with that shorter side, or (height, width); the grid follows the layer's
    size there (`Model.input_size_for`).
    """
    model = model if model is not None else default_model()
    info = model.info
    layer = layer if layer is not None else info.default_layer
    layer_info = info.layer(layer)
    check_top_k(top_k, layer_info.channels, layer)
    if scale not in SCALES:
        raise OptionError(f"scale must be one of {', '.join(SCALES)}, not {scale!r}")
    specs = _basis_specs(basis, layer, layer_info.channels)
    neuron_sprites, basis_sprites = _split_spritemaps(spritemap)
    if neuron_sprites is not None and NEURONS not in specs:
        raise SpritemapError(
            "a spritemap of the neurons was given, but basis= does not ask for the neurons; "
            "add 'neurons' to basis=[...] or leave that spritemap out"
        )
    sprites, sprite_note = None, None
    if NEURONS in specs:
        sprites, sprite_note = _sprites_for(info, layer, neuron_sprites)
    picture = image if isinstance(image, np.ndarray) else load_image(image)
    shown = load_image(picture) if isinstance(picture, np.ndarray) else picture
    input_size = model.input_size_for((shown.height, shown.width), size)
    want_classes = bool(info.class_output and info.labels)
    names = [layer, info.class_output] if want_classes else [layer]
    outputs = model.activations(picture, layers=names, size=input_size)
    acts = outputs[layer][0]
    notes = [info.weights_note, model.precision_note]
    if model.precision == BF16:  # the page says how far this image's ranking moved
        exact = model.float32_activations(picture, layers=layer, size=input_size)[layer][0]
        notes[1] = page_note(acts, exact, top_k, layer)
    views = []
    for spec in specs:
        if spec == NEURONS:
            typical = _typical_maxima(sprites, layer_info.channels)
            views.append(
                BasisView.from_coefficients(
                    acts, top_k, spritemap=sprites, sprite_note=sprite_note, typical=typical
                )
            )
        else:
            views.append(
                _basis_view(
                    spec, acts, layer, model, shown, top_k, n_groups, basis_sprites, input_size
                )
            )
    unused = set(basis_sprites) - {view.basis.fingerprint for view in views if view.basis}
    if unused:
        raise SpritemapError(
            f"{len(unused)} spritemap(s) picture bases that are not among those asked for "
            f"(basis fingerprint {', '.join(sorted(unused))}); pass the Basis each was built "
            "with in basis=[...]"
        )
    return SemanticDict(
        layer,
        views,
        shown,
        layer_channels=layer_info.channels,
        top_classes=_top_classes(outputs[info.class_output][0], info) if want_classes else None,
        title=title if title is not None else _title_for(image),
        weights_note=" ".join(note for note in notes if note) or None,
        replica=info.replica,
        scale=scale,
        total=acts.sum(axis=2),
        image_file=small_image_file(image, shown),
        input_size=input_size,
    )


def gallery(
    images: Iterable[ImageSource | SemanticDict],
    layer: str | None = None,
    model: Model | None = None,
    top_k: int = DEFAULT_TOP_K,
    spritemap: SpritemapSpec | Sequence[SpritemapSpec] | None = None,
    *,
    title: str = "semantic dictionaries",
    progress: bool = True,
    **options: Any,
) -> Gallery:
    """Dictionaries of many images (or ready SemanticDicts) gathered into one Gallery page.

    Each image gets `semantic_dict(image, layer, model, top_k, spritemap, **options)`, with a
    progress bar; the dictionaries stay independent on the page.
    """
    items = list(images)
    if not items:
        raise ImageError("gallery() needs at least one image or SemanticDict")
    if layer is None:
        model = model if model is not None else default_model()
        layer = model.info.default_layer
    if isinstance(spritemap, (str, os.PathLike)):
        spritemap = Spritemap.load(spritemap)  # read once for every image
    dicts = []
    for item in progress_bar(items, unit="image", desc=f"gallery {layer}", disable=not progress):
        if isinstance(item, SemanticDict):
            dicts.append(item)
        else:
            dicts.append(semantic_dict(item, layer, model, top_k, spritemap, **options))
    return Gallery(dicts, title)


def _sprites_for(
    info: ModelInfo, layer: str, spritemap: Spritemap | None
) -> tuple[Spritemap | None, str | None]:
    """The neurons' spritemap (checked against the layer) and a note on its pictures where known
    here: the model's public one is Lucid's; without one, the note says why there is none.
    """
    channels = info.layer(layer).channels
    public = info.spritemaps.get(layer)
    if spritemap is not None:
        spritemap.validate_for(layer, channels)
        lucid = public is not None and spritemap.url == public.url
        return spritemap, LUCID_NOTE.format(url=public.url) if lucid else None
    default = Spritemap.default_for(info, layer)
    if default is not None:
        return default, LUCID_NOTE.format(url=default.url)
    if info.replica:
        why = "the public spritemaps picture the real network's channels, not this replica's"
    else:
        why = f"the model names no spritemap for {layer}"
    return None, (
        f"No channel pictures: {why}. Channel numbers are shown instead; pass spritemap= "
        "(for example one made with build_spritemap) to see pictures."
    )


def _top_classes(probabilities: np.ndarray, info: ModelInfo) -> list[TopClass]:
    """The TOP_CLASSES most probable classes, with their labels, most probable first."""
    labels = info.labels or ()
    order = np.argsort(-probabilities, kind="stable")[:TOP_CLASSES]
    return [TopClass(int(i), str(labels[i]), float(probabilities[i])) for i in order]


def _title_for(source: object) -> str:
    """A default title: the file name of a path or URL (a URL without one: itself), or "image"."""
    return source_name(source) or (str(source) if is_url(source) else "image")


def _basis_specs(
    basis: BasisSpec | Sequence[BasisSpec], layer: str, channels: int
) -> list[BasisSpec]:
    """The bases asked for, as a list: "neurons", "nmf" or a Basis checked against the layer."""
    specs = list(basis) if isinstance(basis, (list, tuple)) else [basis]
    if not specs:
        raise BasisError("basis=[] asks for no basis; pass 'neurons', 'nmf', a Basis or a list")
    checked: list[BasisSpec] = []
    for spec in specs:
        if isinstance(spec, str) and spec in (NEURONS, NMF_METHOD):
            checked.append(spec)
            continue
        if isinstance(spec, str):
            raise BasisError(
                f"unknown basis {spec!r}; pass 'neurons', 'nmf', a Basis (fit_basis, "
                "Basis.load) or a (k x channels) array of directions"
            )
        resolved = resolve_basis(spec, layer, channels)
        checked.append(NEURONS if resolved.method == NEURONS else resolved)
    return checked


def _split_spritemaps(
    spritemap: SpritemapSpec | Sequence[SpritemapSpec] | None,
) -> tuple[Spritemap | None, dict[str, Spritemap]]:
    """The neurons' spritemap (if given) and the others by the fingerprint of their basis."""
    given = list(spritemap) if isinstance(spritemap, (list, tuple)) else [spritemap]
    neurons: Spritemap | None = None
    others: dict[str, Spritemap] = {}
    for item in given:
        if item is None:
            continue
        loaded = Spritemap.load(item) if isinstance(item, (str, os.PathLike)) else item
        if not isinstance(loaded, Spritemap):
            raise SpritemapError(
                f"spritemap must be a Spritemap or the path of a saved one, not "
                f"{type(loaded).__name__}; wrap a grid with Spritemap(source, per_row=..., "
                "sprite_size=..., channels=...)"
            )
        fingerprint = (loaded.manifest or {}).get("basis_fingerprint")
        if loaded.basis == NEURONS or fingerprint is None:
            if neurons is not None:
                raise SpritemapError("two spritemaps of the neurons were given; pass one")
            neurons = loaded
        else:
            others[str(fingerprint)] = loaded
    return neurons, others


def _basis_view(
    spec: BasisSpec,
    acts: np.ndarray,
    layer: str,
    model: Model,
    image: Image.Image,
    top_k: int,
    n_groups: int,
    spritemaps: dict[str, Spritemap],
    input_size: tuple[int, int],
) -> BasisView:
    """The view of one basis other than the neurons, with its pictures and overlay maps.

    `input_size` is the (height, width) the image went into the model at.
    """
    if isinstance(spec, Basis):
        basis, coefficients = spec, spec.project(acts)
    else:
        basis, coefficients = factorize(acts, n_groups, layer=layer)
    sprites = spritemaps.get(basis.fingerprint)
    note = None
    if sprites is not None:
        sprites.validate_for(layer, basis.k)
    else:
        sprites = own_patches_spritemap(
            image, coefficients, layer, model, basis, input_size=input_size
        )
        note = f"Pictures: the patch of this image where each {basis.unit} is strongest."
        if isinstance(spec, Basis):
            note += (
                " For dataset examples, pass spritemap=build_spritemap(images, layer, "
                "basis=this basis)."
            )
    return BasisView.from_coefficients(
        coefficients,
        min(top_k, basis.k),
        basis,
        spritemap=sprites,
        sprite_note=note,
        maps=coefficients if basis.k <= MAX_GROUP_HUES else None,
        typical=None if note else _typical_maxima(sprites, basis.k),
    )


def _typical_maxima(spritemap: Spritemap | None, size: int) -> np.ndarray | None:
    """Each direction's typical maximum over a dataset, from a dataset-example manifest.

    Where the manifest carries the scan's channel statistics: the DATASET_SCALE_QUANTILE
    quantile of each direction's per-image maximum (a full bar is stronger than on 99% of
    the dataset's images). Older manifests: the mean of the activations of a direction's
    kept examples (with one example per direction: its maximum over the dataset). 0 for a
    dead direction; None without such a manifest.
    """
    manifest = (spritemap.manifest or {}) if spritemap is not None else {}
    quantiles = (manifest.get("channel_stats") or {}).get("quantiles") or {}
    reference = quantiles.get(str(DATASET_SCALE_QUANTILE))
    if isinstance(reference, list) and len(reference) >= size:
        return np.array([max(value or 0.0, 0.0) for value in reference[:size]], np.float32)
    sprites = manifest.get("sprites")
    if not isinstance(sprites, list) or len(sprites) < size:
        return None
    typical = np.zeros(size, np.float32)
    for entry in sprites[:size]:
        values = [example["activation"] for example in entry.get("examples", [])]
        typical[int(entry["channel"])] = float(np.mean(values)) if values else 0.0
    return typical
