"""Files named by URI on any filesystem pyarrow opens: s3://, gs://, abfs://, hdfs://, file://.

Dataset scans take their images, and write their checkpoints, on object storage as well as on
local disks. This module lists a folder, reads a file and writes one atomically (a temporary
name, then a move; an object store's upload is whole or absent anyway) through
`pyarrow.fs.FileSystem.from_uri`, which knows the URI schemes and credentials the way Ray Data
does. pyarrow is imported only when a URI is used: it comes with Ray (`semdict_onnx[ray]`).
http(s) URLs are not storage URIs: _images.py downloads those itself.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from PIL import Image

from ._images import IMAGE_SUFFIXES, decode_image, is_url, load_image
from .errors import ImageError, MissingDependencyError

if TYPE_CHECKING:
    import pyarrow.fs

    from ._image_scan import SkipRecorder

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
INSTALL_HINT = "pip install 'semdict_onnx[ray]'"


def is_storage_uri(source: object) -> bool:
    """True for a string with a URI scheme (s3://, file://, ...) other than http(s)."""
    return isinstance(source, str) and bool(_SCHEME.match(source)) and not is_url(source)


def _filesystem(uri: str) -> tuple[pyarrow.fs.FileSystem, str]:
    """The pyarrow filesystem of `uri` and the path inside it."""
    try:
        import pyarrow.fs
    except ImportError as exc:
        raise MissingDependencyError(
            f"reading or writing {uri!r} needs pyarrow, which comes with Ray: {INSTALL_HINT}"
        ) from exc
    try:
        return pyarrow.fs.FileSystem.from_uri(uri)
    except (ValueError, OSError) as exc:
        raise ImageError(f"pyarrow cannot open {uri!r} ({exc}); check the URI") from exc


def exists(uri: str) -> bool:
    """Whether a file is at `uri`."""
    fs, path = _filesystem(uri)
    import pyarrow.fs

    return fs.get_file_info(path).type == pyarrow.fs.FileType.File


def read_bytes(uri: str) -> bytes:
    """The contents of the file at `uri` (OSError when it cannot be read)."""
    fs, path = _filesystem(uri)
    with fs.open_input_stream(path) as stream:
        return stream.read()


def write_bytes_atomic(uri: str, data: bytes) -> None:
    """Write `data` to `uri` under a temporary name, then move it over `uri`."""
    fs, path = _filesystem(uri)
    parent = path.rsplit("/", 1)[0] if "/" in path else ""
    if parent:
        fs.create_dir(parent, recursive=True)
    temporary = f"{path}.{uuid.uuid4().hex}.part"
    try:
        with fs.open_output_stream(temporary) as stream:
            stream.write(data)
        fs.move(temporary, path)
    except BaseException:
        try:
            fs.delete_file(temporary)
        except OSError:
            pass
        raise


def read_image(source: Any) -> Image.Image:
    """`load_image(source)`, reading a storage URI's bytes through pyarrow first."""
    if not is_storage_uri(source):
        return load_image(source)
    try:
        data = read_bytes(source)
    except OSError as exc:
        raise ImageError(f"cannot read the image at {source}: {exc}") from exc
    return decode_image(data, f"the image at {source}")


def list_images(uri: str, report: SkipRecorder) -> tuple[Iterable[str], int]:
    """The image files under the storage folder `uri` (recursively), or `uri` itself if a file.

    Other files are recorded in `report` as skipped, as for a local folder.
    """
    fs, path = _filesystem(uri)
    import pyarrow.fs

    info = fs.get_file_info(path)
    if info.type == pyarrow.fs.FileType.File:
        return [uri], 1
    if info.type != pyarrow.fs.FileType.Directory:
        raise ImageError(f"nothing at {uri!r}: give a folder or file URI that exists")
    base_uri, base_path = uri.rstrip("/"), path.rstrip("/")
    selector = pyarrow.fs.FileSelector(path, recursive=True)
    files = sorted(
        base_uri + entry.path[len(base_path) :]
        for entry in fs.get_file_info(selector)
        if entry.type == pyarrow.fs.FileType.File
    )
    found = [name for name in files if name.lower().endswith(IMAGE_SUFFIXES)]
    for other in (name for name in files if not name.lower().endswith(IMAGE_SUFFIXES)):
        report.skip(other, "not an image file (by its suffix)")
    if not found:
        raise ImageError(
            f"no images under {uri!r} (searched recursively for {', '.join(IMAGE_SUFFIXES)}; "
            f"found {len(files)} other files); point the scan at a folder of photos"
        )
    return found, len(found)
