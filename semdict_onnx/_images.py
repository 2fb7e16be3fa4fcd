"""Images in, model batches out: loading every common source and mode, checking, resizing.

A source is a file path (or `file:` URL), an http(s) URL, encoded bytes, a PIL image, or a
numpy array (uint8 0-255, or float in [0, 1]; shaped HxW, HxWx1 or HxWx3). `load_image` gives an RGB
PIL image at its original size with EXIF orientation applied; `to_batch` gives the
float32 NHWC batch in [0, 1] a model takes, each image stretched to the input size (no
crop, as in the original notebook). `input_size_for` says which input size an image gets for
a requested `size` (the model's default, a shorter side keeping the image's aspect ratio, or
an exact height and width). Transparent pixels are composited on white, the colour of the
page the image is shown on. Float arrays already at the input size pass through unchanged,
without a round trip through 8 bits.
"""

from __future__ import annotations

import http.client
import io
import os
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from urllib.parse import unquote, urlsplit

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ._checks import is_positive_int, positive_int
from ._paths import local_path
from .errors import DownloadError, ImageError

ImageSource = str | os.PathLike | bytes | bytearray | memoryview | Image.Image | np.ndarray
# A requested input size: None (the model's default), a shorter side, or (height, width).
InputSize = int | tuple[int, int] | None

# File name endings of the image files a folder of images is taken to hold.
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")
# Resampling filter for every resize: antialiased, sharp; results are clipped to range.
RESAMPLE = Image.Resampling.LANCZOS
URL_TIMEOUT_S = 30.0
MAX_URL_BYTES = 50 * 2**20
_CHUNK = 1 << 16
_TRANSPARENT_MODES = ("RGBA", "RGBa", "LA", "La", "PA")
_SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")


def _describe(source: object) -> str:
    """A short name for a source in error messages (never a whole byte string)."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return f"{len(source)} bytes"
    if isinstance(source, np.ndarray):
        return f"array {source.shape} {source.dtype}"
    return repr(source) if isinstance(source, (str, os.PathLike)) else type(source).__name__


def is_url(source: object) -> bool:
    """True for a string that is an http(s) URL."""
    return isinstance(source, str) and source.lower().startswith(("http://", "https://"))


def is_file_url(source: object) -> bool:
    """True for a string that is a `file:` URL (read as the local file it names)."""
    return isinstance(source, str) and source[:5].lower() == "file:"


def source_name(source: object) -> str:
    """The file name a path or URL ends in (URLs percent-decoded); '' for others."""
    if is_url(source):  # the last segment, decoded after the split: %2F stays in the name
        return unquote(urlsplit(source).path.rstrip("/").rsplit("/", 1)[-1])
    if isinstance(source, (str, os.PathLike)):
        return local_path(source).name if is_file_url(source) else Path(source).name
    return ""


def fetch_url(url: str) -> bytes:
    """Download `url` (timeout URL_TIMEOUT_S, at most MAX_URL_BYTES) and return its bytes."""
    cap = f"{MAX_URL_BYTES / 2**20:.3g} MiB"
    request = urllib.request.Request(url, headers={"User-Agent": "semdict_onnx"})
    try:
        with urllib.request.urlopen(request, timeout=URL_TIMEOUT_S) as response:
            declared = response.headers.get("Content-Length")
            if declared and declared.isdigit() and int(declared) > MAX_URL_BYTES:
                raise DownloadError(
                    f"the image at {url} is {int(declared) / 2**20:.3g} MiB, over the "
                    f"{cap} limit; download it yourself and pass the file's path"
                )
            data = bytearray()
            while chunk := response.read(_CHUNK):
                data += chunk
                if len(data) > MAX_URL_BYTES:
                    raise DownloadError(
                        f"the image at {url} is over the {cap} limit; "
                        "download it yourself and pass the file's path"
                    )
            if declared and declared.isdigit() and len(data) < int(declared):
                raise DownloadError(
                    f"the download of {url} was cut short ({len(data)} of {declared} bytes); "
                    "try again"
                )
            return bytes(data)
    except urllib.error.HTTPError as exc:
        raise DownloadError(f"could not fetch image {url}: HTTP {exc.code} {exc.reason}") from exc
    except urllib.error.URLError as exc:
        raise DownloadError(f"could not fetch image {url}: {exc.reason}") from exc
    except TimeoutError as exc:
        raise DownloadError(
            f"could not fetch image {url}: no answer within {URL_TIMEOUT_S:g} s"
        ) from exc
    except (OSError, http.client.HTTPException) as exc:
        if isinstance(exc, DownloadError):
            raise
        raise DownloadError(f"could not fetch image {url}: {exc}; try again") from exc


def _open_encoded(stream: str | os.PathLike | io.BytesIO, name: str) -> Image.Image:
    """Decode an image file fully (catching every decode failure) and apply its EXIF rotation."""
    try:
        with Image.open(stream) as image:
            limit = Image.MAX_IMAGE_PIXELS
            if limit and image.width * image.height > limit:
                raise ImageError(
                    f"{name} is {image.width}x{image.height} pixels, over PIL's decompression "
                    f"bomb limit of {limit} pixels; shrink it first, or raise "
                    "PIL.Image.MAX_IMAGE_PIXELS if you trust it"
                )
            image.load()
            # In place: a transposed copy would cost a second buffer per photo (about 1 ms of
            # a 512 px JPEG's 2 ms). Leaving the `with` closes the file, also a multi-frame
            # one's; the loaded frame stays.
            ImageOps.exif_transpose(image, in_place=True)
            return image
    except Image.DecompressionBombError as exc:
        raise ImageError(
            f"{name} is a decompression bomb ({exc}); shrink it first, or raise "
            "PIL.Image.MAX_IMAGE_PIXELS if you trust it"
        ) from exc
    except UnidentifiedImageError as exc:
        raise ImageError(f"{name} is not an image PIL can read (JPEG, PNG, ...)") from exc
    except FileNotFoundError as exc:
        raise ImageError(f"no image file at {name}") from exc
    except IsADirectoryError as exc:
        raise ImageError(f"{name} is a folder, not an image file") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        if isinstance(exc, ImageError):
            raise
        raise ImageError(f"{name} is truncated or corrupt and cannot be decoded ({exc})") from exc


def _to_rgb(image: Image.Image) -> Image.Image:
    """Convert any PIL mode to RGB: alpha on white, 16-bit scaled down, CMYK/palette converted."""
    if image.mode == "RGB":
        return image
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in _TRANSPARENT_MODES:
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    if image.mode in _SIXTEEN_BIT_MODES:
        values = np.asarray(image).astype(np.float64)
        return Image.fromarray(
            np.round(np.clip(values, 0, 65535) / 257).astype(np.uint8), "L"
        ).convert("RGB")
    if image.mode == "F":
        return _array_to_image(np.asarray(image), "float image")
    return image.convert("RGB")


def _check_array(array: np.ndarray, name: str) -> np.ndarray:
    """Validate an image array and return it as HxWx3 (uint8 or float32)."""
    if array.ndim == 3 and array.shape[0] in (1, 3) and array.shape[2] not in (1, 3):
        raise ImageError(
            f"{name} looks channels-first; transpose it to (height, width, 3), "
            "e.g. array.transpose(1, 2, 0)"
        )
    if not (array.ndim == 2 or (array.ndim == 3 and array.shape[2] in (1, 3))):
        raise ImageError(
            f"{name} has the wrong shape: expected (height, width, 3) RGB or (height, width) "
            "grayscale"
        )
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise ImageError(f"{name} is empty")
    if array.dtype == np.uint8:
        checked = array
    elif np.issubdtype(array.dtype, np.floating):
        checked = array.astype(np.float32, copy=False)
        if not np.isfinite(checked).all():
            raise ImageError(f"{name} contains NaN or infinite values")
        low, high = float(checked.min()), float(checked.max())
        if low < 0.0 or high > 1.0:
            raise ImageError(
                f"{name} has values from {low:g} to {high:g}, outside [0, 1]; "
                "pass uint8 (0-255) or scale to [0, 1]"
            )
    else:
        raise ImageError(f"{name} has dtype {array.dtype}; pass uint8 (0-255) or float in [0, 1]")
    if checked.ndim == 2:
        checked = checked[:, :, None]
    if checked.shape[2] == 1:
        checked = np.repeat(checked, 3, axis=2)
    return checked


def _array_to_image(array: np.ndarray, name: str) -> Image.Image:
    """An RGB PIL image from an image array (floats rounded to 8 bits)."""
    checked = _check_array(array, name)
    if checked.dtype != np.uint8:
        checked = np.round(checked * 255).astype(np.uint8)
    return Image.fromarray(np.ascontiguousarray(checked), "RGB")


def decode_image(data: bytes, name: str) -> Image.Image:
    """An encoded image file's bytes as an RGB PIL image; `name` says where they came from."""
    return _to_rgb(_open_encoded(io.BytesIO(data), name))


def load_image(source: ImageSource) -> Image.Image:
    """Load one image source as an RGB PIL image at its original size, EXIF-oriented."""
    name = _describe(source)
    if isinstance(source, Image.Image):
        try:
            source.load()
        except OSError as exc:
            raise ImageError(f"the PIL image is truncated or corrupt ({exc})") from exc
        return _to_rgb(ImageOps.exif_transpose(source))
    if isinstance(source, np.ndarray):
        return _array_to_image(source, name)
    if isinstance(source, (bytes, bytearray, memoryview)):
        if len(source) == 0:
            raise ImageError("the image bytes are empty")
        return _to_rgb(_open_encoded(io.BytesIO(bytes(source)), f"the image bytes ({name})"))
    if is_url(source):
        return decode_image(fetch_url(source), f"the image at {source}")
    if isinstance(source, (str, os.PathLike)):
        path = local_path(source)
        if not path.exists():
            hint = "" if isinstance(source, os.PathLike) else " (URLs must start with http(s)://)"
            raise ImageError(f"no image file at {str(path)!r}{hint}")
        return _to_rgb(_open_encoded(path, repr(str(path))))
    raise ImageError(
        f"cannot read an image from {name}: pass a path, an http(s) URL, bytes, a PIL image "
        "or a numpy array"
    )


def _resize_float(array: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize a float32 HxWx3 array channel by channel in PIL's float mode, clipped to [0, 1]."""
    channels = [
        np.asarray(Image.fromarray(array[:, :, c], "F").resize((width, height), RESAMPLE))
        for c in range(3)
    ]
    return np.clip(np.stack(channels, axis=2), 0.0, 1.0)


def _pixels(source: ImageSource) -> np.ndarray:
    """One source as an HxWx3 array: float32 in [0, 1] for float arrays, else uint8."""
    if isinstance(source, np.ndarray):
        return _check_array(source, _describe(source))
    return np.asarray(load_image(source))


def _write_input(array: np.ndarray, height: int, width: int, out: np.ndarray) -> None:
    """Write an array from `_pixels` into `out` (height x width x 3 float32 in [0, 1])."""
    if array.dtype == np.float32:
        out[:] = (
            array if array.shape[:2] == (height, width) else _resize_float(array, height, width)
        )
        return
    if array.shape[:2] != (height, width):
        array = np.asarray(Image.fromarray(array, "RGB").resize((width, height), RESAMPLE))
    np.multiply(array, np.float32(1 / 255), out=out, casting="unsafe")


def check_input_size(size: object) -> InputSize:
    """`size` as None, a positive int or a (height, width) pair of them, else a clear error."""
    if size is None:
        return None
    if is_positive_int(size):
        return int(size)
    if (
        isinstance(size, (tuple, list))
        and len(size) == 2
        and all(is_positive_int(side) for side in size)
    ):
        return int(size[0]), int(size[1])
    raise ImageError(
        f"size must be None (the model's default), a positive integer (the shorter side, "
        f"keeping each image's aspect ratio) or a (height, width) pair of them, not {size!r}"
    )


def input_size_for(
    image_size: tuple[int, int], size: InputSize, default: tuple[int, int], multiple: int = 1
) -> tuple[int, int]:
    """The (height, width) an image of (height, width) `image_size` goes into a model at.

    `size` None: `default`; a (height, width) pair: exactly that; an int S: the image's aspect
    ratio with the shorter side S and the longer one rounded to a multiple of `multiple` (not
    below S), so a square image gets S x S. Whether the model takes it is the model's check.
    """
    size = check_input_size(size)
    if size is None:
        return default
    if isinstance(size, tuple):
        return size
    height, width = image_size
    longer = max(size, round(size * max(height, width) / min(height, width) / multiple) * multiple)
    return (size, longer) if height <= width else (longer, size)


def image_list(images: ImageSource | Sequence[ImageSource]) -> list[ImageSource]:
    """One source or many as a list; a 4-D array is a batch of images."""
    if isinstance(images, (list, tuple)):
        items = list(images)
    elif isinstance(images, np.ndarray) and images.ndim == 4:
        items = list(images)
    else:
        items = [images]
    if not items:
        raise ImageError("no images given: pass an image or a non-empty list of images")
    return items


def iter_batches(
    images: ImageSource | Sequence[ImageSource],
    size: tuple[int, int] | Callable[[int, int], tuple[int, int]],
    batch_size: int,
) -> Iterator[np.ndarray]:
    """The images as consecutive float32 NHWC batches of at most `batch_size`, loaded lazily.

    `size` is the (height, width) of every image, or a function giving it from an image's own
    (height, width); every image must then get the first one's size (one call, one grid).
    """
    positive_int(batch_size, "batch_size")
    items = image_list(images)
    first: tuple[int, int] | None = None
    for start in range(0, len(items), batch_size):
        count = min(batch_size, len(items) - start)
        batch = None
        for offset in range(count):
            try:
                array = _pixels(items[start + offset])
                wanted = size(*array.shape[:2]) if callable(size) else size
                first = first or wanted
                if wanted != first:
                    raise ImageError(
                        f"it is {array.shape[1]}x{array.shape[0]} px and goes into the model "
                        f"at {wanted[0]}x{wanted[1]} (height x width), but the first image "
                        f"went in at {first[0]}x{first[1]}: one call runs one input size. To "
                        "keep each image's aspect ratio run one image per call, or give every "
                        "image the same size=(height, width)"
                    )
            except ImageError as exc:
                if len(items) == 1:
                    raise
                raise ImageError(f"image {start + offset} of {len(items)}: {exc}") from exc
            if batch is None:
                batch = np.empty((count, *first, 3), dtype=np.float32)
            _write_input(array, *first, batch[offset])
        yield batch


def to_batch(images: ImageSource | Sequence[ImageSource], height: int, width: int) -> np.ndarray:
    """The images as one float32 [N, height, width, 3] batch in [0, 1], each resized to fit."""
    items = image_list(images)
    return next(iter_batches(items, (height, width), len(items)))
