"""The main job: semantic dictionaries of the shipped example photos, one page each plus an index.

Uses the exported model in the default location (or --model); exports it first when there is
none. Where the real GoogLeNet cannot be downloaded (no network), it exports the replica
(random weights) and builds spritemaps from the example photos themselves, and says so in its
output and on every page. The index (_index_page.py) has a row per page: a thumbnail, the
layer and grid, and where the page's pictures come from.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import semdict_onnx
from semdict_onnx._atomic import write_text_atomic
from semdict_onnx._images import IMAGE_SUFFIXES
from semdict_onnx._index_page import render_index
from semdict_onnx._model import Model
from semdict_onnx._paths import default_model_path
from semdict_onnx._results import SemanticDict
from semdict_onnx._spritemap import Spritemap

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "semdict_onnx" / "examples"


def ensure_model() -> Model:
    """The real model if it is or can be exported here, else the replica, loudly."""
    path = default_model_path()
    if path.exists():
        model = semdict_onnx.load_model(path)
        if not model.is_replica:
            return model
    export = [sys.executable, str(ROOT / "scripts" / "export.py")]
    print(f"Exporting GoogLeNet to {path} ...", flush=True)
    if subprocess.run(export).returncode != 0:
        if not path.exists():
            print(
                "\nThe real GoogLeNet could not be exported (see above). Falling back to the\n"
                "REPLICA: the same network with RANDOM weights, so the pages show the tool\n"
                "working, not what GoogLeNet sees. Run `python scripts/export.py` on a machine\n"
                "with network access to get the real model.\n",
                flush=True,
            )
            subprocess.run([*export, "--replica"], check=True)
        else:
            print("\nKeeping the replica model already exported (random weights).\n", flush=True)
    return semdict_onnx.load_model(path)


def spritemap_for(model: Model, layer: str, images: list[Path], out: Path) -> Spritemap:
    """The layer's public spritemap, or one built from the example photos and saved in `out`."""
    public = Spritemap.default_for(model.info, layer)
    if public is not None:
        return public
    print(f"No public spritemap for this model's {layer}: building one from {len(images)} photos")
    spritemap = semdict_onnx.build_spritemap(images, layer, model=model)
    spritemap.save(out / f"spritemap-{layer}.jpg")
    return spritemap


def write_index(out: Path, pages: list[tuple[Path, SemanticDict]], note: str | None) -> Path:
    """The index page: a row per dictionary page, linked by its name in `out`."""
    rows = [(page.name, sd) for page, sd in pages]
    return write_text_atomic(
        out / "index.html", render_index(rows, "Semantic dictionaries", note=note)
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layer", default="mixed4d", help="layer to show (default mixed4d)")
    parser.add_argument("--images", type=Path, default=EXAMPLES, help="folder of photos")
    parser.add_argument("--out", type=Path, default=ROOT / "out", help="output folder")
    parser.add_argument(
        "--model", type=Path, help="an exported model to use as it is (default: export one)"
    )
    args = parser.parse_args(argv)

    images = sorted(p for p in args.images.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    model = semdict_onnx.load_model(args.model) if args.model else ensure_model()
    print(model)
    model.info.layer(args.layer)
    args.out.mkdir(parents=True, exist_ok=True)
    spritemap = spritemap_for(model, args.layer, images, args.out)
    pages = []
    for image in images:
        page = args.out / f"{image.stem}-{args.layer}.html"
        sd = semdict_onnx.semantic_dict(image, layer=args.layer, model=model, spritemap=spritemap)
        pages.append((sd.save(page), sd))
        print(f"wrote {page}")
    index = write_index(args.out, pages, None if model.is_replica else model.info.weights_note)
    print(f"\nOpen {index} in a browser. {model.info.weights_note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
