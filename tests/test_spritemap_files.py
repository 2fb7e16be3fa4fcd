"""Saved spritemaps against hostile manifests and faults: the grid stays in the manifest's
folder, the pair is all new or all old, a user's JSON file survives, and a malformed manifest
of any kind is a SpritemapError."""

from __future__ import annotations

import io
import json
import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from semdict_onnx import _spritemap_files
from semdict_onnx._limits import check_grid
from semdict_onnx._pipeline import _typical_maxima
from semdict_onnx._spritemap import Spritemap, manifest_path_for
from semdict_onnx.errors import SemdictError, SpritemapError, WriteError

SIZE, PER_ROW, CHANNELS = 8, 4, 10


def grid(value: int, channels: int = CHANNELS) -> np.ndarray:
    """A grid of one grey level, so a test can tell which save it came from."""
    rows = -(-channels // PER_ROW)
    return np.full((rows * SIZE, PER_ROW * SIZE, 3), value, np.uint8)


def saved(folder: Path, value: int = 50, name: str = "map.png", **manifest) -> Path:
    """A spritemap of grey `value`, saved as folder/name; its manifest carries `value`."""
    extra = {"value": value, **manifest}
    spritemap = Spritemap(grid(value), PER_ROW, SIZE, CHANNELS, layer="a", manifest=extra)
    return spritemap.save(folder / name)


def rewrite(path: Path, **changes) -> Path:
    """Change fields of the manifest beside grid `path`; a value None removes the field."""
    manifest_path = manifest_path_for(path)
    manifest = json.loads(manifest_path.read_text())
    manifest.update(changes)
    manifest = {key: value for key, value in manifest.items() if value is not None}
    manifest_path.write_text(json.dumps(manifest))
    return manifest_path


def grey(spritemap: Spritemap) -> int:
    """The grey level of a loaded grid (one value everywhere)."""
    pixels = np.asarray(spritemap.image())
    assert (pixels == pixels.flat[0]).all()
    return int(pixels.flat[0])


# The grid stays in the manifest's folder


@pytest.fixture
def private_picture(tmp_path: Path) -> Path:
    """A picture outside the shared folder, the size of a valid grid."""
    folder = tmp_path / "private"
    folder.mkdir()
    path = folder / "holiday.png"
    Image.fromarray(grid(200)).save(path)
    return path


@pytest.mark.parametrize(
    "name",
    ["{private}", "../private/holiday.png", "sub/map.png", "..", ".", "", "C:holiday.png"],
    ids=["absolute", "dot-dot", "subfolder", "parent", "itself", "empty", "drive"],
)
def test_a_manifest_cannot_point_its_grid_out_of_its_folder(tmp_path, private_picture, name):
    """Bug: Spritemap.load followed `image` anywhere, so a shared manifest could make a
    published page embed sprites cut from a private picture."""
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "sub").mkdir()
    Image.fromarray(grid(1)).save(shared / "sub" / "map.png")
    path = saved(shared)
    manifest_path = rewrite(path, image=name.format(private=private_picture), image_sha256=None)
    with pytest.raises(SpritemapError, match=r"a grid must be a file in the manifest's own folder"):
        Spritemap.load(manifest_path)


def test_a_symlink_out_of_the_folder_is_refused_and_one_inside_is_fine(tmp_path, private_picture):
    shared = tmp_path / "shared"
    shared.mkdir()
    path = saved(shared)
    (shared / "link.png").symlink_to(private_picture)
    rewrite(path, image="link.png", image_sha256=None)
    with pytest.raises(SpritemapError, match="a link to .*holiday.png' outside the manifest"):
        Spritemap.load(path)
    (shared / "copy.png").write_bytes(path.read_bytes())
    (shared / "inside.png").symlink_to("copy.png")
    rewrite(path, image="inside.png")
    assert grey(Spritemap.load(path)) == 50


def test_a_grid_that_is_not_a_regular_file_is_refused_without_hanging(tmp_path):
    path = saved(tmp_path)
    os.mkfifo(tmp_path / "pipe.png")
    rewrite(path, image="pipe.png", image_sha256=None)
    with pytest.raises(SpritemapError, match="names grid 'pipe.png', which is not in .* a file"):
        Spritemap.load(path)


# The pair is all new or all old


def test_a_failed_manifest_write_keeps_the_old_pair_loading(tmp_path, monkeypatch):
    """Bug: the grid was replaced first; when the manifest write then failed, the old pair no
    longer loaded ("sha256 differs")."""
    path = saved(tmp_path, 50)

    def full_disk(target, text):
        raise WriteError(f"cannot write {str(target)!r}: no space left on the device")

    monkeypatch.setattr(_spritemap_files, "write_text_atomic", full_disk)
    with pytest.raises(WriteError, match="no space left"):
        saved(tmp_path, 120)
    assert grey(Spritemap.load(path)) == 50
    assert sorted(p.name for p in tmp_path.iterdir()) == ["map.json", "map.png"]


def test_ctrl_c_between_commit_and_rename_loads_the_new_pair(tmp_path, monkeypatch):
    path = saved(tmp_path, 50)

    def interrupted(pending, target):
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(_spritemap_files, "_finish", interrupted)
        with pytest.raises(KeyboardInterrupt):
            saved(tmp_path, 120)
    assert grey(Image.open(path) and Spritemap(path, PER_ROW, SIZE, CHANNELS)) == 50
    loaded = Spritemap.load(path)  # the committed manifest, and its grid by the read rule
    assert (grey(loaded), loaded.manifest["value"]) == (120, 120)
    saved(tmp_path, 7)  # the next save finishes and tidies
    assert sorted(p.name for p in tmp_path.iterdir()) == ["map.json", "map.png"]
    assert grey(Spritemap.load(path)) == 7


def test_a_reader_never_sees_a_mismatched_pair_while_a_writer_saves(tmp_path):
    path = saved(tmp_path, 0)
    stop = time.monotonic() + 3
    failures: list[str] = []
    loads = 0

    def write() -> None:
        value = 0
        while time.monotonic() < stop:
            value = (value + 1) % 250
            saved(tmp_path, value)

    writer = threading.Thread(target=write)
    writer.start()
    while time.monotonic() < stop:
        try:
            loaded = Spritemap.load(path)
            if grey(loaded) != loaded.manifest["value"]:
                failures.append(f"grid {grey(loaded)} with manifest {loaded.manifest['value']}")
        except SemdictError as exc:
            failures.append(str(exc))
        loads += 1
    writer.join()
    assert failures == [] and loads > 20
    assert sorted(p.name for p in tmp_path.iterdir()) == ["map.json", "map.png"]


def test_a_json_file_that_is_not_a_manifest_is_never_replaced(tmp_path):
    """Bug: `--out config.jpg` silently replaced the user's config.json with a manifest."""
    config = tmp_path / "config.json"
    config.write_text('{"theme": "dark"}')
    with pytest.raises(SpritemapError, match="config.json' exists and is not a spritemap manifest"):
        saved(tmp_path, name="config.jpg")
    assert config.read_text() == '{"theme": "dark"}'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json"]
    saved(tmp_path, name="map.png")
    saved(tmp_path, 80, name="map.png")  # our own manifest is replaced, as before
    assert grey(Spritemap.load(tmp_path / "map.json")) == 80


# Messages and limits


def test_data_urls_files_urls_and_urls_are_named_in_messages(tmp_path):
    """Bug: a broken data: URL's error printed `<_io.BytesIO object at 0x...>`."""
    broken = Spritemap("data:image/png;base64,AAAA", PER_ROW, SIZE, CHANNELS)
    with pytest.raises(SpritemapError) as caught:
        broken.image()
    assert str(caught.value) == "the data: URL is not a readable image (no format PIL reads)"
    with pytest.raises(SpritemapError, match="reads a saved spritemap file, not a URL"):
        Spritemap.load("data:image/png;base64,AAAA")
    path = saved(tmp_path / "a b")
    url = "file://" + str(path).replace(" ", "%20")
    assert grey(Spritemap.load(url)) == 50 and grey(Spritemap(url, PER_ROW, SIZE, CHANNELS)) == 50


def test_a_grid_over_pillows_limit_is_refused_before_it_is_decoded(tmp_path, monkeypatch):
    path = saved(tmp_path)
    width, height = PER_ROW * SIZE, 3 * SIZE
    for limit in (width * height - 1, (width * height) // 3):  # a warning, then a bomb for Pillow
        monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", limit)
        message = f"over the limit of {limit:,} pixels .Pillow's MAX_IMAGE_PIXELS"
        with pytest.raises(SpritemapError, match=message):
            Spritemap.load(path)
        with pytest.raises(SpritemapError, match=message):
            Spritemap(path, PER_ROW, SIZE, CHANNELS).image()


def test_layouts_over_the_limits_are_refused_before_anything_is_allocated():
    with pytest.raises(SpritemapError, match="sprite size of 100000 px is over the limit of 1024"):
        Spritemap("https://example.org/m.png", 4, 100000, 10)
    with pytest.raises(SpritemapError, match="over the limit of 89,478,485 pixels"):
        Spritemap("https://example.org/m.png", 100000, 1000, 100000)
    with pytest.raises(SpritemapError, match="a JPEG side is at most 65535 pixels"):
        check_grid(70000, 10, "JPEG", "the grid", SpritemapError)
    check_grid(70000, 10, "PNG", "the grid", SpritemapError)


# Malformed manifests, by hand and fuzzed


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('"image": 5', "'image' must be a string, not 5"),
        ('"channels": "10"', "'channels' must be an integer from 1 to"),
        ('"per_row": true', "'per_row' must be an integer from 1 to"),
        ('"sprite_size": 1e400', "'sprite_size' must be an integer"),
        ('"layer": ["a"]', "'layer' must be a string"),
        ('"sprites": {"0": 1}', "'sprites' must be a list"),
        ('"sprites": [{"channel": 3}]', "sprites[0]: 'channel' must be an integer from 0 to 0"),
        (
            '"sprites": [{"channel": 0, "examples": [{"activation": "x"}]}]',
            "'activation' must be a finite number",
        ),
        (f'"deep": {nested(100000)}', "nests lists or objects too deeply to be read"),
        (f'"deep": {nested(40)}', "nests lists or objects over 32 deep"),
        ('"image_sha256": "zz"', "'image_sha256' must be 64 hex digits"),
    ],
)
def test_malformed_manifests_are_spritemap_errors(tmp_path, text, message):
    """Bug: these raised TypeError, RecursionError or IndexError from deep inside."""
    path = saved(tmp_path)
    manifest_path = manifest_path_for(path)
    good = manifest_path.read_text()
    manifest_path.write_text(good.rstrip().rstrip("}") + ", " + text + "}")
    with pytest.raises(SpritemapError) as caught:
        Spritemap.load(path)
    assert message in str(caught.value)


@pytest.mark.parametrize("text", ["[1, 2]", "5", '"text"', "null", nested(100000)])
def test_a_manifest_that_is_no_object_is_a_spritemap_error(tmp_path, text):
    path = saved(tmp_path)
    manifest_path_for(path).write_text(text)
    with pytest.raises(SpritemapError):
        Spritemap.load(path)


RAW = "\u0000raw\u0000"  # stands for JSON text put into a mutated manifest as it is
JUNK = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(),
    st.text(max_size=12),
    st.lists(st.integers(min_value=-5, max_value=5), max_size=3),
    st.dictionaries(st.text(max_size=4), st.integers(), max_size=2),
    st.sampled_from([nested(40), nested(100000), "1e999", "-0", "[null]"]).map(lambda t: (RAW, t)),
)
PATHS = [
    ("kind",), ("schema",), ("layer",), ("channels",), ("per_row",), ("sprite_size",),
    ("image",), ("image_sha256",), ("basis",), ("basis_fingerprint",), ("images_seen",),
    ("sprites",), ("sprites", 0), ("sprites", 0, "channel"), ("sprites", 0, "examples"),
    ("sprites", 0, "examples", 0), ("sprites", 0, "examples", 0, "activation"),
]  # fmt: skip
MUTATIONS = st.lists(
    st.tuples(st.sampled_from(PATHS), st.one_of(st.just("delete"), JUNK)), min_size=1, max_size=3
)


def mutated(manifest: dict, mutations: list) -> str:
    """The manifest's JSON text with each (path, value) applied: a field replaced or deleted."""
    manifest = json.loads(json.dumps(manifest))
    raws = []
    for path, value in mutations:
        parent = manifest
        for key in path[:-1]:
            try:
                parent = parent[key]
            except (KeyError, IndexError, TypeError):
                break
        else:
            if not isinstance(parent, (dict, list)):
                continue
            if isinstance(parent, list) and not (
                isinstance(path[-1], int) and path[-1] < len(parent)
            ):
                continue
            if value == "delete":
                parent.pop(path[-1]) if isinstance(parent, list) else parent.pop(path[-1], 0)
            elif isinstance(value, tuple):
                raws.append(value[1])
                parent[path[-1]] = f"{RAW}{len(raws) - 1}"
            else:
                parent[path[-1]] = value
    text = json.dumps(manifest)
    for index, raw in enumerate(raws):
        text = text.replace(json.dumps(f"{RAW}{index}"), raw)
    return text


@pytest.fixture(scope="module")
def fuzz_folder(tmp_path_factory) -> tuple[Path, dict]:
    """A saved spritemap with dataset-example entries, and its manifest."""
    folder = tmp_path_factory.mktemp("fuzz")
    sprites = [
        {"channel": n, "examples": [{"activation": float(n), "source": "x.jpg"}]}
        for n in range(CHANNELS)
    ]
    path = saved(folder, basis="neurons", images_seen=3, sprites=sprites)
    return path, json.loads(manifest_path_for(path).read_text())


@settings(max_examples=300, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip
@given(mutations=MUTATIONS)
def test_fuzzed_manifests_raise_only_spritemap_errors(fuzz_folder, mutations):
    path, manifest = fuzz_folder
    manifest_path_for(path).write_text(mutated(manifest, mutations))
    try:
        loaded = Spritemap.load(path)
        loaded.validate_for(loaded.layer or "a", min(loaded.channels, CHANNELS))
        loaded.sprite(0)
        assert loaded.basis
        _typical_maxima(loaded, loaded.channels)
        io.BytesIO(loaded.image().tobytes())
    except SemdictError:
        pass
