"""Everything else, unchanged, on prepared models of the three families: dictionaries with
every kind of basis, galleries, fitted bases, dataset-example spritemaps (built whole or from
scanned examples), show_semantic_dict in a real Jupyter kernel, and pages that name the
network. Models are loaded both ways a user has: a prepared file, and a raw file prepared in
memory by load_model."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import pytest
from byom_families import FAMILIES, build_all, planted_picture
from notebooks import html_outputs, run_notebook
from PIL import Image
from semdict_helpers import reference_top_k

from semdict_onnx import (
    Basis,
    build_spritemap,
    factorize,
    fit_basis,
    gallery,
    load_model,
    receptive_fields,
    scan_examples,
    semantic_dict,
    spritemap_from_examples,
)
from semdict_onnx.errors import ActivationsError

CPU = ["CPUExecutionProvider"]
HOW = ("file", "memory")


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Per family, (raw file, {how: Model}): loaded from a prepared file, and prepared in
    memory from the raw file."""
    result = {}
    for name, (raw, prepared, _) in build_all(tmp_path_factory.mktemp("families")).items():
        family = FAMILIES[name]
        result[name] = (
            raw,
            {
                "file": load_model(prepared, CPU),
                "memory": load_model(raw, CPU, layers=family.layers, **family.options),
            },
        )
    return result


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """Per family a folder of pictures: its planted pattern, a black picture and dim noise."""
    result = {}
    for name in FAMILIES:
        folder = tmp_path_factory.mktemp(f"{name}-pictures")
        image, box = planted_picture(name)
        Image.fromarray(image).save(folder / "planted.png")
        Image.fromarray(np.zeros_like(image)).save(folder / "black.png")
        noise = np.random.default_rng(5).integers(0, 60, image.shape, dtype=np.uint8)
        Image.fromarray(noise).save(folder / "noise.png")
        result[name] = (folder, box)
    return result


def overlaps(box: list[float], pattern: tuple[int, int, int, int]) -> bool:
    left, top, right, bottom = pattern
    return box[0] < right and left < box[2] and box[1] < bottom and top < box[3]


@pytest.mark.parametrize("how", HOW)
@pytest.mark.parametrize("name", list(FAMILIES))
def test_dictionaries_with_every_basis_and_a_gallery_name_the_network(
    models, folders, name, how, tmp_path
):
    model = models[name][1][how]
    layer = list(FAMILIES[name].layers)[-1]
    folder, _ = folders[name]
    assert model.info.network == "net"  # the graph's own name, not the pruner's
    picture = folder / "planted.png"
    with Image.open(picture) as opened:  # a dictionary keeps the picture's aspect ratio
        size = model.input_size_for((opened.height, opened.width))
    acts = model.activations(picture, [layer], size=size)[layer][0]
    if name == "vit":  # a transformer's residual stream is signed: no NMF, given bases work
        with pytest.raises(ActivationsError, match="NMF needs non-negative activations"):
            fit_basis(folder, layer, 2, model=model, progress=False)
        fitted = Basis(
            np.abs(np.random.default_rng(1).normal(size=(2, acts.shape[2]))), layer=layer
        )
        bases = ["neurons", fitted]
    else:
        fitted = fit_basis(folder, layer, 2, model=model, progress=False)
        assert fitted.layer == layer and fitted.channels == model.layers[layer]
        bases = ["neurons", fitted, "nmf"]
    result = semantic_dict(picture, layer, model, top_k=3, basis=bases)
    neurons, directions = result.views[:2]
    np.testing.assert_array_equal(neurons.channels, reference_top_k(acts, 3)[0])
    order, values = reference_top_k(fitted.project(acts), directions.channels.shape[2])
    np.testing.assert_array_equal(directions.channels, order)
    np.testing.assert_allclose(directions.values, values, rtol=1e-6)
    if name != "vit":
        _, coefficients = factorize(acts, layer=layer)
        np.testing.assert_allclose(result.views[2].maps, coefficients, rtol=1e-5, atol=1e-6)
    page = result.save(tmp_path / "page.html").read_text("utf-8")
    assert "net, source graph sha256" in page and "REPLICA" not in page
    both = gallery([picture, folder / "noise.png"], layer, model, progress=False)
    saved = both.save(tmp_path / "gallery.html").read_text("utf-8")
    assert saved.count("net, source graph sha256") == 2


@pytest.mark.parametrize("how", HOW)
@pytest.mark.parametrize("name", list(FAMILIES))
def test_dataset_examples_of_the_planted_channel_are_the_planted_pattern(
    models, folders, name, how
):
    """Channel 0 answers the planted pattern: its best dataset example is the planted
    picture, cropped where the pattern is; scanning then composing picks the same examples."""
    model = models[name][1][how]
    layer = list(FAMILIES[name].layers)[-1]
    folder, pattern = folders[name]
    sprites = build_spritemap(folder, layer, model, sprite_size=16, progress=False)
    manifest = sprites.manifest
    assert sprites.channels == model.layers[layer]
    assert manifest["model"]["network"] == "net" and manifest["images_seen"] == 3
    best = manifest["sprites"][0]
    assert Path(best["source"]).name == "planted.png"
    assert overlaps(best["examples"][0]["box"], pattern), best
    field = receptive_fields(model, [layer])[layer]
    assert manifest["receptive_field"] == field.to_dict()
    scanned = scan_examples(folder, layer, model, progress=False)
    again = spritemap_from_examples(scanned, model, sprite_size=16)
    # The same winners at the same places (the pixels differ at sharp edges where a picture
    # is larger than the input: build_spritemap shrinks the pictures it keeps before cropping)
    assert again.manifest["sprites"] == manifest["sprites"]
    assert again.image().size == sprites.image().size


def test_show_semantic_dict_on_a_raw_file_prepared_in_memory(
    jupyter_path,
    monkeypatch,
    models,
    folders,
):
    """In a real kernel: load_model(raw, layers=..., preprocessing=...), then display."""
    raw, loaded = models["keras"]
    family = FAMILIES["keras"]
    picture = folders["keras"][0] / "planted.png"
    notebook = run_notebook(
        [
            f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
            "from byom_families import FAMILIES\n"
            "from semdict_onnx import load_model, show_semantic_dict\n"
            f"family = FAMILIES['keras']\n"
            f"model = load_model({str(raw)!r}, layers=family.layers, **family.options)\n"
            "print(model.prepared_in_memory)",
            f"shown = show_semantic_dict({str(picture)!r}, 'block2_relu6', model)",
        ],
        jupyter_path,
        monkeypatch,
    )
    assert notebook.cells[0].outputs[0]["text"].strip() == "True"
    [html] = html_outputs(notebook.cells[1])
    acts = loaded["file"].activations(picture, ["block2_relu6"])["block2_relu6"][0]
    row, col, _ = np.unravel_index(int(np.argmax(acts)), acts.shape)
    shown = [int(c) for c in re.findall(r'data-channel="(\d+)"', html)]
    assert shown == reference_top_k(acts, 4)[0][row, col].tolist()
    assert "net, source graph sha256" in html
    assert family.layout == "NHWC" and sys.executable  # the kernel runs this interpreter
