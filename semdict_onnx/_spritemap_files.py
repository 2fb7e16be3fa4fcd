"""A saved spritemap: its grid image and JSON manifest, written as one pair and read back checked.

`save_pair` writes NAME.png (or .jpg) and NAME.json; the manifest names the grid by its bare
file name and its SHA-256. `load_pair` reads them back.

All new or all old. Two files cannot be renamed into place at once, so the manifest is the
commit point and the grid waits for it under a second name:

1. the new grid is written (atomically) as `.NAME.png.<first 16 hex of its sha256>.pending`;
2. the new manifest replaces NAME.json (atomically): the pair is now committed;
3. the pending grid is renamed over NAME.png.

The read rule: the grid is NAME.png if its SHA-256 is the manifest's, else the pending file
of that SHA-256. Before step 2 a reader sees the old manifest and the old grid; from step 2 on
the new manifest and, by the rule, the new grid, whether or not step 3 has happened (a writer
killed between 2 and 3 leaves a pair that still reads whole, and the next save of that name
finishes the rename). A save holds the folder's exclusive lock and a read its shared lock
(`folder_lock`, flock on the folder), so a reader never meets a save half-way, and writers take
turns; where flock is missing, a reader whose manifest and grid changed under it reads both
again. Each save removes the pending grids of its name that no manifest needs. A
content-addressed grid name (NAME.<hash>.png) would have needed no read rule, but the file
a user asked for (`--out NAME.png`) would not exist under that name.

Saving refuses to replace a NAME.json that is not a spritemap manifest (a user's config.json
survives `--out config.jpg`). Reading trusts nothing in the manifest: every field the library
uses is checked (_json_fields.py), the layout against the size limits (_limits.py), and the
grid must be a regular file in the manifest's own folder, named without any path separator,
never reached through a symlink that leads out of that folder, so that a shared manifest
cannot make a page embed sprites cut from some other picture on the reader's disk.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

from ._atomic import (
    check_output_file,
    folder_lock,
    make_folder,
    write_bytes_atomic,
    write_text_atomic,
)
from ._json_fields import Fields, parse_json_object
from ._limits import MAX_GRID_BYTES, check_grid, check_sprite_size
from ._paths import local_path
from .errors import SpritemapError, WriteError

MANIFEST_KIND = "semdict_onnx.spritemap"
MANIFEST_SCHEMA = 1
IMAGE_FORMATS = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG"}
PENDING_SUFFIX = ".pending"
# Manifests list every kept example; even 1024 channels x 100 examples stay far below this.
MAX_MANIFEST_BYTES = 256 * 2**20
READ_ATTEMPTS = 3
# Activations are float32: a larger value in a manifest is no activation of ours.
FLOAT32_MAX = 3.4028234663852886e38
_SHA256 = re.compile(r"[0-9a-f]{64}")


def manifest_path_for(image_path: str | os.PathLike[str]) -> Path:
    """The manifest file that sits beside a saved spritemap grid (same name, .json suffix)."""
    return Path(image_path).with_suffix(".json")


def pending_path(grid: Path, sha256: str) -> Path:
    """Where a new grid waits for its manifest (see the module docstring)."""
    return grid.with_name(f".{grid.name}.{sha256[:16]}{PENDING_SUFFIX}")


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def check_save_target(target: Path, what: str = "") -> Path:
    """Refuse a grid path whose pair cannot be written; return the manifest's path.

    The suffix must be an image format, neither name may be a folder, and an existing NAME.json
    must be a spritemap manifest (any other file of that name is the user's, and stays).
    `what` names the option the path came from in messages (e.g. "--out").
    """
    if target.suffix.lower() not in IMAGE_FORMATS:
        raise SpritemapError(
            f"cannot save a spritemap as {target.name!r}: the name must end in "
            f"{', '.join(IMAGE_FORMATS)}"
        )
    manifest_path = manifest_path_for(target)
    check_output_file(target, what)
    if manifest_path.is_dir():
        raise WriteError(f"cannot write the manifest {str(manifest_path)!r}: it is a folder")
    if manifest_path.exists():
        try:
            existing = json.loads(manifest_path.read_bytes()[:MAX_MANIFEST_BYTES])
            ours = isinstance(existing, dict) and existing.get("kind") == MANIFEST_KIND
        except (OSError, ValueError, RecursionError):
            ours = False
        if not ours:
            raise SpritemapError(
                f"{str(manifest_path)!r} exists and is not a spritemap manifest; saving the "
                f"grid as {target.name!r} would replace it with the manifest, so choose another "
                "name for the spritemap"
            )
    return manifest_path


def save_pair(target: Path, data: bytes, manifest: dict[str, Any]) -> Path:
    """Write the encoded grid `data` to `target` and `manifest` beside it, as one pair.

    `manifest` must hold the grid's "image" (target's name) and "image_sha256" (of `data`).
    """
    manifest_path = check_save_target(target)
    pending = pending_path(target, manifest["image_sha256"])
    text = json.dumps(manifest, indent=1) + "\n"
    with folder_lock(make_folder(target.parent)):
        _tidy(target, manifest_path)
        write_bytes_atomic(pending, data)
        try:
            write_text_atomic(manifest_path, text)  # the commit point
        except BaseException:
            pending.unlink(missing_ok=True)
            raise
        _finish(pending, target)
    return target


def _finish(pending: Path, target: Path) -> None:
    """Step 3: the committed grid takes its own name (if this fails, the pair still reads)."""
    try:
        os.replace(pending, target)
    except OSError as exc:
        raise WriteError(
            f"the spritemap {str(target)!r} was saved, but its grid is still named "
            f"{pending.name!r} ({exc.strerror}); it loads as it is, and the next save finishes it"
        ) from exc


def _tidy(target: Path, manifest_path: Path) -> None:
    """Finish a save that was killed after its commit, and remove pending grids nobody needs.

    Runs under the folder lock, so no other save of this folder is half-way.
    """
    needed = None
    with contextlib.suppress(OSError, ValueError, RecursionError, AttributeError):
        needed = json.loads(manifest_path.read_bytes()).get("image_sha256")
    pattern = re.compile(rf"\.{re.escape(target.name)}\.[0-9a-f]{{16}}{re.escape(PENDING_SUFFIX)}")
    for path in target.parent.iterdir():
        if not pattern.fullmatch(path.name):
            continue
        with contextlib.suppress(OSError):
            if isinstance(needed, str) and path == pending_path(target, needed):
                os.replace(path, target)
            else:
                path.unlink()


def load_pair(path: str | os.PathLike[str]) -> tuple[dict[str, Any], Path, bytes]:
    """The checked manifest, the grid's path and its verified bytes of a saved spritemap.

    `path` is the grid image or its .json manifest (see the module docstring for the rules).
    """
    if isinstance(path, str) and re.match(r"(https?|data):", path, re.IGNORECASE):
        raise SpritemapError(
            f"Spritemap.load reads a saved spritemap file, not a URL ({path[:60]!r}); for a "
            "URL use Spritemap(url, per_row=..., sprite_size=..., channels=...)"
        )
    given = local_path(path)
    manifest_path = given if given.suffix.lower() == ".json" else manifest_path_for(given)
    with folder_lock(manifest_path.parent, shared=True):
        return _read_pair(manifest_path)


def _read_pair(manifest_path: Path) -> tuple[dict[str, Any], Path, bytes]:
    """`load_pair` under the folder's shared lock, by the read rule, with retries where the
    folder cannot be locked."""
    for _ in range(READ_ATTEMPTS):
        manifest = read_manifest(manifest_path)
        grid = grid_path(manifest_path, manifest["image"])
        try:
            data = _read_limited(grid, f"spritemap grid {str(grid)!r}")
        except OSError as exc:
            raise SpritemapError(
                f"cannot read spritemap grid {str(grid)!r} ({exc.strerror})"
            ) from exc
        expected = manifest.get("image_sha256")
        if expected is None or _sha256(data) == expected:
            return manifest, grid, data
        with contextlib.suppress(OSError):
            waiting = _read_limited(pending_path(grid, expected), "the pending grid")
            if _sha256(waiting) == expected:
                return manifest, grid, waiting
    raise SpritemapError(
        f"spritemap grid {str(grid)!r} does not match its manifest (sha256 differs): one of the "
        "two was replaced; rebuild or re-save the spritemap"
    )


def _read_limited(path: Path, what: str) -> bytes:
    """A file's bytes, refusing one larger than any grid within the limits could be."""
    with open(path, "rb") as handle:
        data = handle.read(MAX_GRID_BYTES + 1)
    if len(data) > MAX_GRID_BYTES:
        raise SpritemapError(f"{what} is over {MAX_GRID_BYTES // 2**20} MiB; it is no grid of ours")
    return data


def grid_path(manifest_path: Path, name: str) -> Path:
    """The grid file a manifest names, which must be a regular file in the manifest's folder."""
    where = f"spritemap manifest {str(manifest_path)!r}"
    separators = {"/", "\\", os.sep, os.altsep or "/", ":", "\0"}
    if not name or name in (".", "..") or any(char in name for char in separators):
        raise SpritemapError(
            f"{where} names its grid {name[:80]!r}; a grid must be a file in the manifest's own "
            "folder, named without any path (no '/', '\\', ':' or '..')"
        )
    folder = manifest_path.parent
    grid = folder / name
    if not grid.is_file():
        raise SpritemapError(
            f"{where} names grid {name!r}, which is not in {str(folder)!r} (or is not a file)"
        )
    resolved = grid.resolve()
    if resolved.parent != folder.resolve():
        raise SpritemapError(
            f"{where} names grid {name!r}, a link to {str(resolved)!r} outside the manifest's "
            "folder; a grid must be a file in the manifest's own folder"
        )
    return resolved


def read_manifest(manifest_path: Path) -> dict[str, Any]:
    """A manifest file's JSON object, every field the library uses checked."""
    where = f"spritemap manifest {str(manifest_path)!r}"
    if not manifest_path.is_file():
        raise SpritemapError(
            f"no spritemap manifest at {str(manifest_path)!r}; Spritemap.load reads what "
            "Spritemap.save or `semdict spritemap` wrote (a grid image plus a .json beside it)"
        )
    try:
        with open(manifest_path, "rb") as handle:
            text = handle.read(MAX_MANIFEST_BYTES + 1)
    except OSError as exc:
        raise SpritemapError(f"cannot read {where} ({exc.strerror})") from exc
    if len(text) > MAX_MANIFEST_BYTES:
        raise SpritemapError(f"{where} is over {MAX_MANIFEST_BYTES // 2**20} MiB")
    raw = parse_json_object(text, where, SpritemapError)
    if raw.get("kind") != MANIFEST_KIND or raw.get("schema") != MANIFEST_SCHEMA:
        raise SpritemapError(
            f"{str(manifest_path)!r} is not a version-{MANIFEST_SCHEMA} spritemap manifest; "
            "rebuild the spritemap with this version of semdict_onnx"
        )
    fields = Fields(raw, where, SpritemapError)
    fields.text("layer", None)
    fields.text("image")
    fields.text("basis", None)
    fields.text("basis_fingerprint", None)
    fields.integer("images_seen", None, low=0)
    digest = fields.text("image_sha256", None)
    if digest is not None and not _SHA256.fullmatch(digest):
        raise SpritemapError(f"{where}: 'image_sha256' must be 64 hex digits, not {digest[:80]!r}")
    channels, per_row = fields.integer("channels"), fields.integer("per_row")
    sprite_size = fields.integer("sprite_size")
    check_sprite_size(sprite_size, SpritemapError)
    rows = -(-channels // per_row)
    check_grid(per_row * sprite_size, rows * sprite_size, None, f"the grid {where} describes",
               SpritemapError)  # fmt: skip
    for index, item in enumerate(fields.items("sprites", [])):
        # Each sprite entry's channel is its place in the list; its examples have values.
        entry = Fields(item, f"{where}: sprites[{index}]", SpritemapError)
        entry.integer("channel", low=index, high=index)
        entry.each("examples", lambda ex: ex.number("activation", magnitude=FLOAT32_MAX), [])
    return raw
