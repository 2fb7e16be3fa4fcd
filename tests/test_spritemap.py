"""Spritemap: sources, sprite cutting, validation against a layer, defaults, save and load."""

from __future__ import annotations

import base64
import io
import json

import numpy as np
import pytest
from PIL import Image

from semdict_onnx._metadata import InputInfo, LayerInfo, ModelInfo, SpritemapInfo
from semdict_onnx._spritemap import Spritemap, manifest_path_for
from semdict_onnx.errors import SemdictError, SpritemapError, UnknownLayerError

SIZE = 8
PER_ROW = 4
CHANNELS = 10  # 3 rows, the last one partly empty


def colour(channel: int) -> tuple[int, int, int]:
    """A distinct colour per channel, far apart from its neighbours."""
    return (20 * channel + 5, 255 - 20 * channel, (97 * channel) % 256)


def make_grid(channels: int = CHANNELS, per_row: int = PER_ROW, size: int = SIZE) -> np.ndarray:
    """A grid whose sprite n is filled with colour(n)."""
    rows = -(-channels // per_row)
    grid = np.zeros((rows * size, per_row * size, 3), np.uint8)
    for n in range(channels):
        row, col = divmod(n, per_row)
        grid[row * size : (row + 1) * size, col * size : (col + 1) * size] = colour(n)
    return grid


def png_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def model_info(replica: bool) -> ModelInfo:
    return ModelInfo(
        network="TestNet",
        input=InputInfo(name="image", height=32, width=32),
        layers=(LayerInfo("a", 16, 8, 8), LayerInfo("b", 24, 4, 4)),
        source_sha256="0" * 64,
        replica=replica,
        spritemaps={"a": SpritemapInfo("https://example.org/sprite_a.jpeg", 4, 110)},
    )


def assert_sprites_are_colours(spritemap: Spritemap) -> None:
    for n in range(CHANNELS):
        sprite = np.asarray(spritemap.sprite(n))
        assert sprite.shape == (SIZE, SIZE, 3)
        assert (sprite == colour(n)).all(), n


@pytest.fixture
def grid() -> np.ndarray:
    return make_grid()


def test_sprites_from_every_local_source_are_cut_at_column_and_row(grid, tmp_path):
    path = tmp_path / "grid.png"
    path.write_bytes(png_bytes(grid))
    data_url = "data:image/png;base64," + base64.b64encode(png_bytes(grid)).decode()
    sources = [grid, Image.fromarray(grid), path, str(path), data_url]
    for source in sources:
        spritemap = Spritemap(source, per_row=PER_ROW, sprite_size=SIZE, channels=CHANNELS)
        assert not spritemap.is_remote
        assert_sprites_are_colours(spritemap)
    assert Spritemap(data_url, PER_ROW, SIZE, CHANNELS).url == data_url
    assert Spritemap(path, PER_ROW, SIZE, CHANNELS).path == path
    assert Spritemap(path, PER_ROW, SIZE, CHANNELS).url is None


def test_file_grid_is_read_once(grid, tmp_path):
    path = tmp_path / "grid.png"
    path.write_bytes(png_bytes(grid))
    spritemap = Spritemap(path, PER_ROW, SIZE, CHANNELS)
    first = spritemap.image()
    path.unlink()  # a second read would fail
    assert spritemap.image() is first
    assert_sprites_are_colours(spritemap)


def test_remote_spritemap_is_for_the_browser_only():
    url = "https://example.org/sprite_mixed4d.jpeg"
    spritemap = Spritemap(url, per_row=22, sprite_size=110, channels=528, layer="mixed4d")
    assert spritemap.is_remote and spritemap.url == url and spritemap.path is None
    with pytest.raises(SpritemapError, match="remote: only the browser loads it"):
        spritemap.sprite(0)
    spritemap.validate_for("mixed4d", 528)  # layout facts only; nothing is downloaded
    assert Spritemap("http://example.org/x.jpg", 1, 1, 1).is_remote


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("javascript:alert(1)", "scheme 'javascript'; only http, https and data URLs"),
        ("ftp://example.org/x.jpg", "scheme 'ftp'"),
        ("/no/such/grid.png", "spritemap file '/no/such/grid.png' does not exist"),
        (12, "cannot use a int as a spritemap source"),
        (
            np.zeros((24, 32, 3), np.float32),
            "must be uint8 of shape .height, width, 3., not float32",
        ),
        (np.zeros((24, 32), np.uint8), r"not uint8 \(24, 32\)"),
    ],
)
def test_bad_sources_are_refused_clearly(source, message):
    with pytest.raises(SpritemapError, match=message):
        Spritemap(source, per_row=PER_ROW, sprite_size=SIZE, channels=CHANNELS)


@pytest.mark.parametrize("field", ["per_row", "sprite_size", "channels"])
@pytest.mark.parametrize("value", [0, -3, 2.5, True])
def test_layout_must_be_positive_integers(grid, field, value):
    layout = {"per_row": PER_ROW, "sprite_size": SIZE, "channels": CHANNELS, field: value}
    with pytest.raises(SpritemapError, match=f"spritemap {field} must be a positive integer"):
        Spritemap(grid, **layout)


def test_errors_are_semdict_value_errors():
    assert issubclass(SpritemapError, SemdictError) and issubclass(SpritemapError, ValueError)


def test_wrong_grid_is_refused_with_the_sizes(grid, tmp_path):
    with pytest.raises(SpritemapError, match=r"the array is 32x24 px.*5 per row.*40 px wide"):
        Spritemap(grid, per_row=5, sprite_size=SIZE, channels=CHANNELS)
    with pytest.raises(SpritemapError, match=r"at least 32 px high"):
        Spritemap(grid, per_row=PER_ROW, sprite_size=SIZE, channels=13)
    path = tmp_path / "grid.png"
    path.write_bytes(png_bytes(grid))
    lazy = Spritemap(path, per_row=PER_ROW, sprite_size=9, channels=CHANNELS)
    with pytest.raises(SpritemapError, match=r"spritemap file .*grid.png' is 32x24 px"):
        lazy.validate_for("a", CHANNELS)


def test_unreadable_grid_file_is_refused(tmp_path):
    path = tmp_path / "grid.png"
    path.write_bytes(b"not an image")
    with pytest.raises(SpritemapError, match="grid.png' is not a readable image"):
        Spritemap(path, PER_ROW, SIZE, CHANNELS).sprite(0)
    with pytest.raises(SpritemapError, match="data: URL is malformed"):
        Spritemap("data:image/png;base64,@@@", PER_ROW, SIZE, CHANNELS).image()


def test_validate_for_checks_layer_and_channel_count(grid):
    spritemap = Spritemap(grid, PER_ROW, SIZE, CHANNELS, layer="a")
    spritemap.validate_for("a", CHANNELS)
    spritemap.validate_for("a", CHANNELS - 2)  # spare sprites are fine
    with pytest.raises(SpritemapError, match="has 10 sprites but layer 'a' has 11 channels"):
        spritemap.validate_for("a", CHANNELS + 1)
    with pytest.raises(SpritemapError, match="pictures layer 'a', not 'b'"):
        spritemap.validate_for("b", CHANNELS)
    Spritemap(grid, PER_ROW, SIZE, CHANNELS).validate_for("b", CHANNELS)  # no layer: any fits


def test_channel_outside_the_map_is_refused(grid):
    spritemap = Spritemap(grid, PER_ROW, SIZE, CHANNELS)
    for channel in (-1, CHANNELS):
        with pytest.raises(SpritemapError, match=r"outside this spritemap's 10 sprites \(0..9\)"):
            spritemap.sprite(channel)


def test_default_is_the_public_map_of_the_real_model_only():
    real = model_info(replica=False)
    default = Spritemap.default_for(real, "a")
    assert default is not None and default.is_remote
    assert (default.url, default.per_row, default.sprite_size) == (
        "https://example.org/sprite_a.jpeg",
        4,
        110,
    )
    assert (default.channels, default.layer) == (16, "a")
    assert Spritemap.default_for(real, "b") is None
    assert Spritemap.default_for(model_info(replica=True), "a") is None
    with pytest.raises(UnknownLayerError, match="unknown layer 'zz'"):
        Spritemap.default_for(real, "zz")


def test_png_save_and_load_round_trip_exactly(grid, tmp_path):
    extra = {"basis": "nmf", "sprites": [{"channel": 0, "dead": True}]}
    spritemap = Spritemap(grid, PER_ROW, SIZE, CHANNELS, layer="a", manifest=extra)
    path = spritemap.save(tmp_path / "out" / "map.png")
    assert sorted(p.name for p in path.parent.iterdir()) == ["map.json", "map.png"]
    manifest = json.loads(manifest_path_for(path).read_text())
    assert manifest["layer"] == "a" and manifest["channels"] == CHANNELS
    assert (manifest["per_row"], manifest["sprite_size"], manifest["image"]) == (4, 8, "map.png")
    assert manifest["sprites"] == extra["sprites"]
    for given in (path, manifest_path_for(path), str(path)):
        loaded = Spritemap.load(given)
        assert (loaded.layer, loaded.channels, loaded.per_row, loaded.sprite_size) == (
            "a",
            CHANNELS,
            PER_ROW,
            SIZE,
        )
        assert loaded.basis == "nmf" and loaded.manifest["sprites"] == extra["sprites"]
        assert (np.asarray(loaded.image()) == grid).all()
        loaded.validate_for("a", CHANNELS)


def test_jpeg_save_keeps_the_sprites_close(grid, tmp_path):
    path = Spritemap(grid, PER_ROW, SIZE, CHANNELS).save(tmp_path / "map.jpg")
    with Image.open(path) as saved:
        assert saved.format == "JPEG"
    loaded = Spritemap.load(path)
    assert loaded.layer is None and loaded.basis == "neurons"
    error = np.abs(np.asarray(loaded.image(), np.int16) - grid.astype(np.int16))
    assert error.mean() < 6


def test_save_refuses_other_suffixes_and_remote_maps(grid, tmp_path):
    with pytest.raises(SpritemapError, match=r"'map.gif': the name must end in .jpg, .jpeg, .png"):
        Spritemap(grid, PER_ROW, SIZE, CHANNELS).save(tmp_path / "map.gif")
    with pytest.raises(SpritemapError, match="remote"):
        Spritemap("https://example.org/m.jpg", 4, 8, 10).save(tmp_path / "m.jpg")
    assert list(tmp_path.iterdir()) == []


def test_failed_save_leaves_previous_files_whole(grid, tmp_path, monkeypatch):
    path = Spritemap(grid, PER_ROW, SIZE, CHANNELS, layer="a").save(tmp_path / "map.png")
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}

    def broken_save(*args, **kwargs):
        raise OSError("disk full")

    other = Spritemap(make_grid(CHANNELS, 2), 2, SIZE, CHANNELS, layer="a")
    other.image()
    monkeypatch.setattr(Image.Image, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        other.save(path)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_load_explains_what_is_wrong(grid, tmp_path):
    with pytest.raises(SpritemapError, match="no spritemap manifest at .*nothing.json"):
        Spritemap.load(tmp_path / "nothing.png")
    path = Spritemap(grid, PER_ROW, SIZE, CHANNELS).save(tmp_path / "map.png")
    manifest_path = manifest_path_for(path)
    good = json.loads(manifest_path.read_text())

    manifest_path.write_text("{not json")
    with pytest.raises(SpritemapError, match="is not valid JSON"):
        Spritemap.load(path)
    manifest_path.write_text(json.dumps({**good, "schema": 99}))
    with pytest.raises(SpritemapError, match="is not a version-1 spritemap manifest"):
        Spritemap.load(path)
    manifest_path.write_text(json.dumps({k: v for k, v in good.items() if k != "per_row"}))
    with pytest.raises(SpritemapError, match="lacks .per_row."):
        Spritemap.load(path)
    manifest_path.write_text(json.dumps({**good, "image": "gone.png"}))
    with pytest.raises(SpritemapError, match="names grid 'gone.png', which is not in"):
        Spritemap.load(path)
    manifest_path.write_text(json.dumps(good))
    path.write_bytes(png_bytes(make_grid(CHANNELS, 2)))
    with pytest.raises(SpritemapError, match="does not match its manifest"):
        Spritemap.load(path)
