"""Where a dictionary's entry pictures come from, as the sentence every page shows under them.

The sentence is read from the pictures themselves: a spritemap's JSON manifest where it has
one (dataset examples, with how many images and from which folder; any other method this
library renders, such as feature visualizations, by the manifest's `method`, with how many
were rendered), a remote spritemap's URL, or the admission that nothing says. Notes written
where the pictures are chosen (_pipeline.py: Lucid's public spritemap, this image's own
patches, no pictures) are used as they are. A manifest is read defensively: a field of the
wrong type is left out of the sentence, never an error.
"""

from __future__ import annotations

from typing import Any

from ._spritemap import Spritemap
from ._views import BasisView

DATASET_EXAMPLES = "dataset examples"  # the method _dataset_examples.py writes
LUCID_NOTE = (
    "Pictures: Lucid's feature visualizations of each channel (the public spritemap {url})."
)


def view_pictures_note(view: BasisView) -> str:
    """Where the pictures of one basis view come from: its own note, else read from them."""
    return view.sprite_note or pictures_note(view.spritemap, view.unit)


def pictures_note(spritemap: Spritemap | None, unit: str) -> str:
    """One sentence on where the pictures of `unit`s (channel, group, direction) come from."""
    if spritemap is None:
        return f"No pictures: {unit} numbers are shown instead."
    manifest = spritemap.manifest if isinstance(spritemap.manifest, dict) else {}
    method = manifest.get("method")
    if method == DATASET_EXAMPLES:
        return _dataset_note(manifest, unit)
    if isinstance(method, str) and method.strip():
        return _rendered_note(method.strip(), manifest, unit)
    if spritemap.is_remote:
        return (
            f"Pictures: the spritemap at {spritemap.url}; nothing says how its pictures were made."
        )
    return "Pictures: a spritemap passed in; nothing says how its pictures were made."


def _count(value: Any, noun: str) -> str | None:
    """ "1 image" or "4 images" for a non-negative int, else None."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return None
    return f"{value} {noun}{'' if value == 1 else 's'}"


def _by_replica(manifest: dict[str, Any]) -> str:
    """ ", found by a replica model (random weights)" where the manifest says so."""
    model = manifest.get("model")
    return (
        ", by a replica model (random weights)"
        if isinstance(model, dict) and model.get("replica") is True
        else ""
    )


def _dataset_note(manifest: dict[str, Any], unit: str) -> str:
    """Dataset examples: per direction its strongest patches, among how many images, where."""
    per = manifest.get("examples_per_channel")
    each = "the patch that excites" if per == 1 else "the patches that excite"
    if isinstance(per, int) and not isinstance(per, bool) and per > 1:
        each = f"the {per} patches that excite"
    among = _count(manifest.get("images_seen"), "image") or "a set of images"
    folder = manifest.get("images_folder")
    where = f" in the folder “{folder}”" if isinstance(folder, str) and folder else ""
    return (
        f"Pictures: dataset examples: for each {unit}, {each} it most among {among}{where}"
        f"{_by_replica(manifest)}."
    )


def _rendered_note(method: str, manifest: dict[str, Any], unit: str) -> str:
    """Pictures this library rendered by `method` (e.g. feature visualization), and how many."""
    plural = method if method.endswith("s") else f"{method}s"
    text = f"Pictures: {plural} rendered by semdict_onnx{_by_replica(manifest)}"
    rendered, missing = manifest.get("rendered"), manifest.get("missing")
    if isinstance(rendered, list) and isinstance(missing, list) and missing:
        total = len(rendered) + len(missing)
        text += f" ({len(rendered)} of {total} {unit}s so far; the others are blank)"
    return text + "."
