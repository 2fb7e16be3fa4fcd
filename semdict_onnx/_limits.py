"""Upper bounds on sizes, checked before anything of that size is allocated.

- MAX_INPUT_PIXELS: one image goes into a model at no more than 2048 x 2048 pixels' worth
  (4,194,304 pixels, any shape). GoogLeNet on ONNX Runtime takes about 230 bytes of memory
  per input pixel (measured: 750 MB at 1792 x 1792), so about 1 GB at the limit; the default
  224 x 224 is 84 times smaller.
- MAX_SPRITE_SIZE: a sprite's side, 1024 pixels (pages show sprites at 100 pixels or less).
- A spritemap grid: at most MAX_GRID_BYTES of RGB pixels (1 GiB), at most Pillow's
  `Image.MAX_IMAGE_PIXELS` (89,478,485 unless changed; Pillow refuses to open larger images
  as decompression bombs, so such a grid could not be read back) and, saved as JPEG, at most
  JPEG_MAX_SIDE pixels a side (the format's own limit; PNG has none that low).

Each error names the limit and what to change.
"""

from __future__ import annotations

import math

from PIL import Image

from .errors import SemdictError

MAX_INPUT_PIXELS = 2048 * 2048
MAX_SPRITE_SIZE = 1024
MAX_GRID_BYTES = 2**30
JPEG_MAX_SIDE = 65535


def check_input_pixels(height: int, width: int, error: type[SemdictError]) -> None:
    """Refuse an input size over MAX_INPUT_PIXELS, naming the limit."""
    if height * width > MAX_INPUT_PIXELS:
        side = math.isqrt(MAX_INPUT_PIXELS)
        raise error(
            f"an input of {height}x{width} pixels is over the limit of {MAX_INPUT_PIXELS:,} "
            f"pixels ({side}x{side}) one image may go into the model at (its memory grows with "
            "the pixels: about 1 GB for GoogLeNet at the limit); ask for a smaller size"
        )


def check_sprite_size(sprite_size: int, error: type[SemdictError]) -> None:
    """Refuse a sprite side over MAX_SPRITE_SIZE."""
    if sprite_size > MAX_SPRITE_SIZE:
        raise error(
            f"a sprite size of {sprite_size} px is over the limit of {MAX_SPRITE_SIZE} px a "
            "side; pages show sprites at 100 px or less, so ask for a smaller sprite size"
        )


def grid_pixel_limit() -> int:
    """The most pixels a grid may have: MAX_GRID_BYTES of RGB, and what Pillow will open."""
    pillow = Image.MAX_IMAGE_PIXELS
    return min(MAX_GRID_BYTES // 3, int(pillow) if pillow else MAX_GRID_BYTES // 3)


def check_grid(
    width: int, height: int, image_format: str | None, what: str, error: type[SemdictError]
) -> None:
    """Refuse a grid of width x height pixels over the limits (JPEG's too, for "JPEG")."""
    limit = grid_pixel_limit()
    if width * height > limit:
        pillow = Image.MAX_IMAGE_PIXELS
        whose = (
            "Pillow's MAX_IMAGE_PIXELS, above which it refuses to open an image"
            if pillow and int(pillow) == limit
            else f"{MAX_GRID_BYTES // 2**20:,} MiB of RGB pixels"
        )
        raise error(
            f"{what} would be {width}x{height} = {width * height:,} pixels, over the limit of "
            f"{limit:,} pixels ({whose}); use smaller sprites or a per-row count near the "
            "square root of the sprite count"
        )
    if image_format == "JPEG" and max(width, height) > JPEG_MAX_SIDE:
        raise error(
            f"{what} would be {width}x{height} pixels, but a JPEG side is at most "
            f"{JPEG_MAX_SIDE} pixels; save it as .png, or use fewer sprites per row"
        )
