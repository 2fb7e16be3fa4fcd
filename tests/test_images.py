"""Image loading and batching: every source kind and mode, EXIF, URLs, and every bad input."""

from __future__ import annotations

import http.server
import io
import os
import struct
import threading
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from semdict_onnx import _images as images
from semdict_onnx._images import load_image, to_batch
from semdict_onnx.errors import DownloadError, ImageError

EXAMPLES = Path(images.__file__).parent / "examples"
RED, BLUE, WHITE = (255, 0, 0), (0, 0, 255), (255, 255, 255)


def encode(image: Image.Image, fmt: str = "PNG", **options) -> bytes:
    """`image` encoded as a file in `fmt`."""
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def png_rgb16(pixels: np.ndarray) -> bytes:
    """A 48-bit (16 bits per channel) RGB PNG, which Pillow cannot write itself."""

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    height, width, _ = pixels.shape
    raw = b"".join(b"\x00" + row.astype(">u2").tobytes() for row in pixels)
    header = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def palette_with_transparency() -> Image.Image:
    """A 2x1 palette image: index 0 red and opaque, index 1 transparent."""
    image = Image.new("P", (2, 1))
    image.putpalette([255, 0, 0, 0, 255, 0] + [0, 0, 0] * 254)
    image.putdata([0, 1])
    image.info["transparency"] = 1
    return image


# (PIL mode the file opens in + detail, encoded file, RGB expected at pixels (0, 0) and (1, 0))
MODE_CASES = [
    ("RGB", encode(Image.new("RGB", (2, 1), RED)), RED, RED),
    (
        "RGBA",
        encode(Image.frombytes("RGBA", (2, 1), bytes([255, 0, 0, 255, 0, 0, 255, 0]))),
        RED,
        WHITE,
    ),
    (
        "RGBA half",
        encode(Image.frombytes("RGBA", (2, 1), bytes([0, 0, 255, 128, 0, 0, 0, 0]))),
        (127, 127, 255),
        WHITE,
    ),
    ("L", encode(Image.new("L", (2, 1), 100)), (100,) * 3, (100,) * 3),
    ("LA", encode(Image.frombytes("LA", (2, 1), bytes([50, 255, 50, 0]))), (50,) * 3, WHITE),
    ("1", encode(Image.new("1", (2, 1), 1)), WHITE, WHITE),
    ("P", encode(Image.new("RGB", (2, 1), BLUE).convert("P")), BLUE, BLUE),
    ("P transparency", encode(palette_with_transparency()), RED, WHITE),
    (
        "CMYK",
        encode(Image.new("CMYK", (2, 1), (255, 0, 0, 0)), "TIFF"),
        (0, 255, 255),
        (0, 255, 255),
    ),
    (
        "I;16",
        encode(Image.fromarray(np.array([[65535, 128 * 257]], np.uint16))),
        WHITE,
        (128,) * 3,
    ),
    (
        "I (32-bit TIFF)",
        encode(Image.fromarray(np.array([[65535, 257 * 64]], np.int32)), "TIFF"),
        WHITE,
        (64,) * 3,
    ),
    (
        "F (float TIFF)",
        encode(Image.fromarray(np.array([[1.0, 0.5]], np.float32)), "TIFF"),
        WHITE,
        (128,) * 3,
    ),
    (
        "RGB 48-bit PNG",
        png_rgb16(np.array([[[65535, 0, 0], [0, 200 * 257, 65535]]], np.uint16)),
        RED,
        (0, 200, 255),
    ),
]


@pytest.mark.parametrize(
    ("encoded", "first", "second"),
    [case[1:] for case in MODE_CASES],
    ids=[case[0] for case in MODE_CASES],
)
def test_every_mode_loads_as_rgb(
    encoded: bytes, first: tuple, second: tuple, tmp_path: Path, request: pytest.FixtureRequest
):
    assert Image.open(io.BytesIO(encoded)).mode == request.node.callspec.id.split(" ")[0]
    path = tmp_path / "image.bin"
    path.write_bytes(encoded)
    for source in (path, str(path), encoded, Image.open(io.BytesIO(encoded))):
        image = load_image(source)
        assert image.mode == "RGB"
        assert image.size == (2, 1)
        np.testing.assert_allclose(image.getpixel((0, 0)), first, atol=1)
        np.testing.assert_allclose(image.getpixel((1, 0)), second, atol=1)


def test_exif_orientation_is_applied(tmp_path):
    # 40 wide, 20 high: red left half, blue right half; orientation 6 = display rotated 90° CW.
    pixels = np.zeros((20, 40, 3), np.uint8)
    pixels[:, :20] = RED
    pixels[:, 20:] = BLUE
    stored = Image.fromarray(pixels)
    exif = stored.getexif()
    exif[0x0112] = 6
    encoded = encode(stored, "JPEG", quality=95, exif=exif.tobytes())
    path = tmp_path / "sideways.jpg"
    path.write_bytes(encoded)
    users_image = Image.open(io.BytesIO(encoded))
    for source in (encoded, users_image, path, str(path)):
        image = load_image(source)
        assert image.size == (20, 40)
        np.testing.assert_allclose(image.getpixel((10, 5)), RED, atol=30)
        np.testing.assert_allclose(image.getpixel((10, 35)), BLUE, atol=30)
        # Loaded again (as semantic_dict hands its picture to the model): not turned twice.
        assert np.array_equal(np.asarray(load_image(image)), np.asarray(image))
    # The user's own image is left as it was (files are turned in place, never a user's image).
    assert users_image.size == (40, 20)
    assert users_image.getexif()[0x0112] == 6


def test_example_photo_loads_at_original_size():
    image = load_image(EXAMPLES / "chelsea.jpg")
    assert image.mode == "RGB"
    assert image.size == Image.open(EXAMPLES / "chelsea.jpg").size


def test_arrays_load_as_images():
    gray = np.full((3, 5), 7, np.uint8)
    assert load_image(gray).getpixel((4, 2)) == (7, 7, 7)
    assert load_image(gray[:, :, None]).size == (5, 3)
    floats = np.full((3, 5, 3), 0.5, np.float64)
    assert load_image(floats).getpixel((0, 0)) == (128, 128, 128)


def test_to_batch_passes_float_arrays_at_model_size_through_exactly():
    rng = np.random.default_rng(1)
    exact = rng.random((12, 10, 3), dtype=np.float32)
    batch = to_batch(exact, 12, 10)
    assert batch.shape == (1, 12, 10, 3) and batch.dtype == np.float32
    assert np.array_equal(batch[0], exact)


def test_to_batch_scales_uint8_by_255():
    pixels = np.arange(12 * 10 * 3, dtype=np.uint32).reshape(12, 10, 3).astype(np.uint8)
    batch = to_batch([pixels, Image.fromarray(pixels)], 12, 10)
    np.testing.assert_allclose(batch[0], pixels / 255, atol=1e-7)
    assert np.array_equal(batch[0], batch[1])


def test_to_batch_resizes_to_any_size_and_keeps_range():
    sources = [
        EXAMPLES / "chelsea.jpg",
        np.full((7, 9, 3), 0.25, np.float32),
        np.full((30, 50), 200, np.uint8),
        np.random.default_rng(2).random((33, 17, 3)),
    ]
    batch = to_batch(sources, 24, 16)
    assert batch.shape == (4, 24, 16, 3) and batch.dtype == np.float32
    assert batch.min() >= 0.0 and batch.max() <= 1.0
    np.testing.assert_allclose(batch[1], 0.25, atol=1e-6)
    np.testing.assert_allclose(batch[2], 200 / 255, atol=1e-6)


def test_four_dimensional_array_is_a_batch():
    stack = np.random.default_rng(3).random((5, 8, 8, 3)).astype(np.float32)
    batch = to_batch(stack, 8, 8)
    assert np.array_equal(batch, stack)


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def truncated_jpeg() -> bytes:
    data = (EXAMPLES / "chelsea.jpg").read_bytes()
    return data[: len(data) // 2]


@pytest.mark.parametrize(
    ("source", "message"),
    [
        (lambda tmp: tmp / "nowhere.jpg", "no image file at '{tmp}/nowhere.jpg'"),
        (lambda tmp: "ftp://example.com/cat.jpg", "URLs must start with http(s)://"),
        (lambda tmp: tmp, "is a folder, not an image file"),
        (lambda tmp: write(tmp / "notes.txt", b"hello"), "is not an image PIL can read"),
        (lambda tmp: b"hello, not an image", "is not an image PIL can read"),
        (lambda tmp: b"", "the image bytes are empty"),
        (lambda tmp: write(tmp / "cut.jpg", truncated_jpeg()), "is truncated or corrupt"),
        (lambda tmp: truncated_jpeg(), "is truncated or corrupt"),
        (lambda tmp: np.array([[[0.5, np.nan, 0.1]]]), "contains NaN or infinite values"),
        (lambda tmp: np.full((4, 4, 3), np.inf, np.float32), "contains NaN or infinite values"),
        (
            lambda tmp: np.full((4, 4, 3), 255.0),
            "values from 255 to 255, outside [0, 1]; pass uint8 (0-255) or scale to [0, 1]",
        ),
        (lambda tmp: np.full((4, 4, 3), -0.5), "outside [0, 1]; pass uint8"),
        (lambda tmp: np.zeros((4, 4, 4), np.uint8), "has the wrong shape: expected (height, width"),
        (lambda tmp: np.zeros((4,), np.uint8), "has the wrong shape"),
        (lambda tmp: np.zeros((3, 8, 8), np.uint8), "looks channels-first; transpose it"),
        (lambda tmp: np.zeros((0, 5, 3), np.uint8), "is empty"),
        (lambda tmp: np.zeros((4, 4, 3), np.int64), "has dtype int64; pass uint8 (0-255) or float"),
        (lambda tmp: np.zeros((4, 4, 3), bool), "has dtype bool"),
        (lambda tmp: 42, "cannot read an image from int: pass a path, an http(s) URL, bytes"),
    ],
)
def test_bad_images_say_what_is_wrong(source, message: str, tmp_path: Path):
    value = source(tmp_path)
    expected = message.format(tmp=tmp_path)
    with pytest.raises(ImageError) as caught:
        load_image(value)
    assert expected in str(caught.value)
    with pytest.raises(ImageError) as caught:
        to_batch(value, 8, 8)
    assert expected in str(caught.value)


def test_empty_list_is_an_error():
    with pytest.raises(ImageError, match="no images given: pass an image or a non-empty list"):
        to_batch([], 8, 8)


def test_error_in_a_list_names_the_image():
    good = np.zeros((4, 4, 3), np.uint8)
    with pytest.raises(ImageError, match=r"image 1 of 3: .*contains NaN"):
        to_batch([good, np.full((4, 4), np.nan), good], 8, 8)


def test_decompression_bomb_is_refused(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    # Over twice the limit: PIL raises DecompressionBombError while opening.
    with pytest.raises(ImageError, match="is a decompression bomb"):
        load_image(encode(Image.new("RGB", (100, 100))))


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_decompression_bomb_warning_becomes_an_error(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    # Between the limit and twice it: PIL only warns; the loader refuses it.
    with pytest.raises(ImageError, match="40x40 pixels, over PIL's decompression bomb limit"):
        load_image(encode(Image.new("RGB", (40, 40))))


class _Handler(http.server.BaseHTTPRequestHandler):
    """Routes for the URL tests: an image, a 404, a big file, a cut connection, a stall."""

    release = threading.Event()
    image = encode(Image.new("RGB", (3, 2), BLUE))

    def log_message(self, *args) -> None:
        return

    def _send(self, body: bytes, length: int | None = None) -> None:
        self.send_response(200)
        if length is not None:
            self.send_header("Content-Length", str(length))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path == "/blue.png":
            self._send(self.image, len(self.image))
        elif self.path == "/text":
            self._send(b"<html>not an image</html>", 25)
        elif self.path == "/big-declared":
            self._send(self.image, 10_000_000)
        elif self.path == "/big-undeclared":
            self.close_connection = True
            self._send(b"x" * 5000)
        elif self.path == "/cut":
            self.close_connection = True
            self._send(self.image[:20], len(self.image))
        elif self.path == "/stall":
            self.release.wait(10)
        else:
            self.send_error(404, "Not Found")


@pytest.fixture(scope="module")
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    _Handler.release.set()
    httpd.shutdown()
    httpd.server_close()


def test_url_loads(server: str):
    image = load_image(f"{server}/blue.png")
    assert image.size == (3, 2) and image.getpixel((0, 0)) == BLUE
    assert np.allclose(to_batch([f"{server}/blue.png"], 2, 3)[0], np.array(BLUE) / 255)


def test_url_errors(server: str, monkeypatch: pytest.MonkeyPatch):
    with pytest.raises(DownloadError, match="HTTP 404"):
        load_image(f"{server}/missing.png")
    with pytest.raises(ImageError, match=f"the image at {server}/text is not an image"):
        load_image(f"{server}/text")
    with pytest.raises(DownloadError, match=r"cut short \(20 of \d+ bytes\)"):
        load_image(f"{server}/cut")
    monkeypatch.setattr(images, "MAX_URL_BYTES", 4096)
    with pytest.raises(
        DownloadError, match="9.54 MiB, over the 0.00391 MiB limit; download it yourself"
    ):
        load_image(f"{server}/big-declared")
    with pytest.raises(DownloadError, match="is over the 0.00391 MiB limit"):
        load_image(f"{server}/big-undeclared")
    monkeypatch.setattr(images, "URL_TIMEOUT_S", 0.3)
    with pytest.raises(DownloadError, match="no answer within 0.3 s|timed out"):
        load_image(f"{server}/stall")


def test_unreachable_url_is_a_download_error():
    # Port 9 (discard) on loopback: nothing listens there on a test machine.
    with pytest.raises(DownloadError, match="could not fetch image http://127.0.0.1:9/x.png"):
        load_image("http://127.0.0.1:9/x.png")


@pytest.mark.parametrize(
    ("source", "name"),
    [
        ("photos/cat.jpg", "cat.jpg"),
        (Path("photos") / "dog.png", "dog.png"),
        ("https://h.example/dir/dog%20face.jpeg?x=1", "dog face.jpeg"),
        ("HTTP://h.example/a/b/", "b"),
        ("https://h.example", ""),
        (b"\x89PNG", ""),
    ],
)
def test_source_name_is_the_file_name_a_path_or_url_ends_in(source, name):
    # One rule for the page's default title and the CLI's page file names.
    assert images.source_name(source) == name


def _open_files() -> set[str]:
    """The files this process holds open (Linux)."""
    folder = Path("/proc/self/fd")
    names = set()
    for fd in folder.iterdir():
        try:
            names.add(os.readlink(fd))
        except OSError:
            pass
    return names


@pytest.mark.skipif(not Path("/proc/self/fd").exists(), reason="needs Linux's /proc")
def test_files_are_closed_once_loaded(tmp_path):
    # A multi-page TIFF keeps its file open for seeking until closed: load_image returns its
    # first frame with the file closed, as for a plain JPEG (no handle left per image of a scan).
    frames = [Image.new("RGB", (8, 6), colour) for colour in (RED, BLUE)]
    animated = tmp_path / "pages.tiff"  # RGB frames: returned without a conversion
    frames[0].save(animated, save_all=True, append_images=frames[1:])
    photo = tmp_path / "photo.jpg"
    frames[1].save(photo)
    loaded = [load_image(animated), load_image(photo)]
    assert not {str(animated), str(photo)} & _open_files()
    assert [image.size for image in loaded] == [(8, 6), (8, 6)]
    np.testing.assert_allclose(loaded[0].getpixel((0, 0)), RED, atol=8)
    np.testing.assert_allclose(loaded[1].getpixel((0, 0)), BLUE, atol=8)
