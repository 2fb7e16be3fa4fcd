"""The picture a page shows: its display copy, its file embedded as it is, data URIs.

A dictionary keeps an RGB copy of its image at most DISPLAY_IMAGE_MAX_PX on the long side
(twice the size it is shown at, for high-density screens). A small JPEG or PNG file of the
image is embedded as it is, with no re-encoding and no second JPEG loss, once its type (by
its magic bytes), mode, transparency, EXIF orientation and size say a browser shows it as the
display copy; anything else is encoded here. Data URIs of pictures (the page's, sprites',
overlays') are made here too.
"""

from __future__ import annotations

import base64
import io
import os
from pathlib import Path

from PIL import Image

from ._images import ImageSource, is_url

# The CSS pixels the page shows a picture at on its long side.
IMAGE_DISPLAY_PX = 320
IMAGE_JPEG_QUALITY = 85
# The page's copy of the picture: twice the size it is shown at, for high-density screens.
# A photo up to that size is embedded as it is, with no resampling (a bicubic resample of a
# 512 px photo took 2.5 ms, a fifth of the model call).
DISPLAY_IMAGE_MAX_PX = 2 * IMAGE_DISPLAY_PX
# A JPEG or PNG file within DISPLAY_IMAGE_MAX_PX and this many bytes is embedded as it is:
# no re-encoding (0.6 ms for a 512 px photo) and no second JPEG loss.
IMAGE_FILE_MAX_BYTES = 512 * 1024
IMAGE_FILE_TYPES = {b"\xff\xd8\xff": "image/jpeg", b"\x89PNG\r\n\x1a\n": "image/png"}
EXIF_ORIENTATION = 0x0112


def data_uri(data: bytes, mime: str) -> str:
    """`data` as a base64 data URI of type `mime`."""
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def image_data_uri(image: Image.Image, quality: int = IMAGE_JPEG_QUALITY) -> str:
    """`image` encoded as a JPEG data URI (PNG where it has transparency)."""
    buffer = io.BytesIO()
    if image.mode in ("RGBA", "LA", "P"):
        image.save(buffer, format="PNG", optimize=True)
        return data_uri(buffer.getvalue(), "image/png")
    image.convert("RGB").save(buffer, format="JPEG", quality=quality)
    return data_uri(buffer.getvalue(), "image/jpeg")


def display_size(image: Image.Image, longest: int = IMAGE_DISPLAY_PX) -> tuple[int, int]:
    """The (width, height) in CSS pixels to show `image` at, keeping its aspect ratio."""
    width, height = image.size
    scale = longest / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def display_copy(image: Image.Image) -> Image.Image:
    """An RGB copy of `image` at most DISPLAY_IMAGE_MAX_PX on its long side, for the page."""
    picture = image.convert("RGB") if image.mode != "RGB" else image.copy()
    picture.thumbnail(
        (DISPLAY_IMAGE_MAX_PX, DISPLAY_IMAGE_MAX_PX), Image.Resampling.BICUBIC, reducing_gap=2.0
    )
    return picture


def small_image_file(source: ImageSource, picture: Image.Image) -> bytes | None:
    """The bytes of a path or bytes source the page may embed as they are, else None.

    Only a JPEG or PNG already at most DISPLAY_IMAGE_MAX_PX and IMAGE_FILE_MAX_BYTES, read
    again here (`file_uri` checks it is `picture`); URLs and decoded images get re-encoded.
    """
    if max(picture.size) > DISPLAY_IMAGE_MAX_PX:
        return None
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
    elif isinstance(source, (str, os.PathLike)) and not is_url(source):
        path = Path(source).expanduser()
        try:
            if path.stat().st_size > IMAGE_FILE_MAX_BYTES:
                return None
            data = path.read_bytes()
        except OSError:
            return None
    else:
        return None
    return data if len(data) <= IMAGE_FILE_MAX_BYTES else None


def file_uri(data: bytes, picture: Image.Image) -> str | None:
    """A data URI of `data` if it is a JPEG or PNG file of `picture` a browser shows as is."""
    mime = next((m for magic, m in IMAGE_FILE_TYPES.items() if data.startswith(magic)), None)
    if mime is None:
        return None
    try:
        with Image.open(io.BytesIO(data)) as opened:
            plain = opened.mode in ("RGB", "L") and "transparency" not in opened.info
            upright = opened.getexif().get(EXIF_ORIENTATION, 1) == 1
            if not (plain and upright and opened.size == picture.size):
                return None
    except (OSError, ValueError, Image.DecompressionBombError):
        return None
    return data_uri(data, mime)
