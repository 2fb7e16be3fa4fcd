"""Lucid's standard random transforms, as sparse resampling matrices with exact adjoints.

Each optimization step draws one set of transforms for the whole batch, as Lucid's
`transform.standard_transforms` do: pad by 12 pixels (constant 0.5), jitter by up to 8,
scale by one of 0.90 ... 1.10, rotate by one of -10 ... 10 degrees (0 five times as often),
jitter by up to 4. The network therefore sees a slightly different, slightly differently
sized crop at every step, which is what keeps the picture free of high-frequency patterns.

Every stage is linear in the image (plus the constant fill): pad and jitter together with
the scale (bilinear, half-pixel centres) form one sparse matrix, the rotation (bilinear about
the centre) and the second jitter another. `apply` multiplies by them; `adjoint` multiplies
by their transposes in reverse order, so the gradient reaching the picture is exact, not the
approximation TensorFlow's image-transform gradients give. The matrices are scipy.sparse
CSR matrices (float32, deterministic). Pixels sampled from outside the picture take the
fill value, also where Lucid's rotation fills with black.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.sparse

PAD = 12
FILL = 0.5
FIRST_JITTER = 8
SCALES = tuple(1 + (i - 5) / 50 for i in range(11))
ANGLES = tuple(range(-10, 11)) + (0,) * 5
SECOND_JITTER = 4


@dataclass(frozen=True)
class StepTransform:
    """One step's random draws: the two jitter offsets (rows, columns), scale and angle."""

    first_offset: tuple[int, int]
    scale: float
    angle: float
    second_offset: tuple[int, int]


def draw_transforms(seed: int, steps: int) -> list[StepTransform]:
    """The transforms of `steps` steps, all from one generator seeded with `seed`."""
    rng = np.random.default_rng([seed, 0x7F])
    draws = []
    for _ in range(steps):
        first = tuple(int(v) for v in rng.integers(0, FIRST_JITTER + 1, 2))
        scale = SCALES[int(rng.integers(len(SCALES)))]
        angle = ANGLES[int(rng.integers(len(ANGLES)))]
        second = tuple(int(v) for v in rng.integers(0, SECOND_JITTER + 1, 2))
        draws.append(StepTransform(first, scale, angle, second))
    return draws


def output_size(size: tuple[int, int], scale: float) -> tuple[int, int]:
    """The (height, width) the network sees for a picture of `size` at `scale`."""
    return tuple(int(scale * (side + 2 * PAD - FIRST_JITTER)) - SECOND_JITTER for side in size)  # type: ignore[return-value]


def smallest_output(size: tuple[int, int]) -> tuple[int, int]:
    """The smallest (height, width) the transforms can hand the network."""
    return output_size(size, min(SCALES))


class Resampling:
    """out = M @ picture + fill * (1 - row sums of M), on pictures as pixel columns (see doc)."""

    def __init__(
        self,
        source: tuple[int, int],
        rows: np.ndarray,
        cols: np.ndarray,
    ) -> None:
        """Bilinear samples of a `source`-sized picture at (rows, cols), real coordinates."""
        height, width = source
        self.source = source
        self.shape = rows.shape
        y0, x0 = np.floor(rows), np.floor(cols)
        fy, fx = (rows - y0).ravel(), (cols - x0).ravel()
        y0, x0 = y0.astype(np.int64).ravel(), x0.astype(np.int64).ravel()
        out = np.arange(y0.size)
        entries = []
        for dy, wy in ((0, 1 - fy), (1, fy)):
            for dx, wx in ((0, 1 - fx), (1, fx)):
                y, x, weight = y0 + dy, x0 + dx, wy * wx
                keep = (weight > 0) & (y >= 0) & (y < height) & (x >= 0) & (x < width)
                entries.append((out[keep], (y * width + x)[keep], weight[keep]))
        out_index, in_index, weights = (np.concatenate(part) for part in zip(*entries, strict=True))
        self.matrix = scipy.sparse.csr_matrix(
            (weights.astype(np.float32), (out_index, in_index)),
            shape=(y0.size, height * width),
            dtype=np.float32,
        )
        self._transposed = self.matrix.T.tocsr()
        inside = np.asarray(self.matrix.sum(axis=1), np.float32).ravel()
        self.fill = (FILL * (1.0 - inside)).astype(np.float32)

    def apply(self, columns: np.ndarray) -> np.ndarray:
        """Resampled pictures, as columns: [source pixels, K] -> [output pixels, K]."""
        return self.matrix @ columns + self.fill[:, None]

    def adjoint(self, columns: np.ndarray) -> np.ndarray:
        """The gradient w.r.t. the source columns, from the gradient w.r.t. the output."""
        return self._transposed @ columns


def _grid(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Row and column index grids of an image."""
    rows, cols = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    return rows.astype(np.float64), cols.astype(np.float64)


class Transform:
    """One step's transforms for pictures of `size`, as two resamplings."""

    def __init__(self, size: tuple[int, int], draw: StepTransform) -> None:
        self._size = size
        height, width = size
        crop = (height + 2 * PAD - FIRST_JITTER, width + 2 * PAD - FIRST_JITTER)
        scaled = tuple(int(draw.scale * side) for side in crop)
        # Stage 1: pad, jitter and scale. Output pixel (i, j) samples the jittered crop of the
        # padded picture at half-pixel-centred coordinates, i.e. the picture itself shifted
        # by the jitter offset less the padding.
        rows, cols = _grid(*scaled)
        rows = (rows + 0.5) * crop[0] / scaled[0] - 0.5 + draw.first_offset[0] - PAD
        cols = (cols + 0.5) * crop[1] / scaled[1] - 0.5 + draw.first_offset[1] - PAD
        self._stages = [Resampling(size, rows, cols)]
        # Stage 2: rotate about the centre, then jitter: output (i, j) is rotated-image pixel
        # (i + offset), which samples the scaled picture at the inverse rotation of it.
        final = (scaled[0] - SECOND_JITTER, scaled[1] - SECOND_JITTER)
        rows, cols = _grid(*final)
        rows += draw.second_offset[0]
        cols += draw.second_offset[1]
        centre = ((scaled[0] - 1) / 2, (scaled[1] - 1) / 2)
        angle = math.radians(draw.angle)
        cos, sin = math.cos(angle), math.sin(angle)
        dy, dx = rows - centre[0], cols - centre[1]
        source_rows = cos * dy + sin * dx + centre[0]
        source_cols = -sin * dy + cos * dx + centre[1]
        self._stages.append(Resampling(scaled, source_rows, source_cols))
        self.output_size = final

    def apply(self, pictures: np.ndarray) -> np.ndarray:
        """What the network sees: the transformed pictures [N, h, w, 3]."""
        count = len(pictures)
        columns = pictures.transpose(1, 2, 0, 3).reshape(-1, count * 3)
        for stage in self._stages:
            columns = stage.apply(columns)
        seen = columns.reshape(*self.output_size, count, 3).transpose(2, 0, 1, 3)
        return np.ascontiguousarray(seen, dtype=np.float32)

    def adjoint(self, grads: np.ndarray) -> np.ndarray:
        """The gradient w.r.t. the pictures, from the gradient w.r.t. what the network saw."""
        count = len(grads)
        columns = grads.transpose(1, 2, 0, 3).reshape(-1, count * 3)
        for stage in reversed(self._stages):
            columns = stage.adjoint(columns)
        back = columns.reshape(*self._size, count, 3).transpose(2, 0, 1, 3)
        return np.ascontiguousarray(back, dtype=np.float32)
