"""The dictionary page of a prepared model, per family, in Debian's Chromium: hovering a cell
shows exactly the top-k Python computes from the model's activations, and the page names the
network."""

from __future__ import annotations

import numpy as np
import pytest
from byom_families import FAMILIES
from PIL import Image
from test_page_chromium import (
    EXAMPLES,
    browser,  # noqa: F401 (the fixture)
    cell,
    expected,
    opened,
    selection,
    shown,
)

from semdict_onnx import load_model, semantic_dict
from semdict_onnx._prepare import prepare_model


@pytest.mark.parametrize("name", list(FAMILIES))
def test_hover_shows_the_python_top_k_on_prepared_models(browser, name, tmp_path):  # noqa: F811
    family = FAMILIES[name]
    prepared = tmp_path / f"{name}.onnx"
    info = prepare_model(
        family.build(tmp_path / "raw.onnx"), prepared, family.layers, **family.options
    )
    model = load_model(prepared, providers=["CPUExecutionProvider"])
    layer = list(family.layers)[-1]
    image = EXAMPLES / "rocket.jpg"
    with Image.open(image) as photo:  # a dictionary keeps the photo's aspect ratio
        size = model.input_size_for((photo.height, photo.width))
    acts = model.activations(image, layers=[layer], size=size)[layer][0]
    rows, cols, _ = acts.shape
    path = semantic_dict(image, layer, model=model).save(tmp_path / "page.html")
    with opened(browser, path) as run:
        root = run.root()
        for row, col in [(0, 0), (rows - 1, cols - 1), (0, cols - 1), (rows // 2, cols // 3)]:
            cell(root, row, col).hover()
            assert selection(root) == (row, col, False)
            assert shown(root) == expected(acts, 4, row, col), (row, col)
        assert info.network in root.inner_text()
        assert np.isfinite(acts).all() and run.blocked == []
