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

import itertools
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


def _taps(coords: np.ndarray, size: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """The two linear-interpolation taps of real coordinates along one axis of `size`, each
    as (weights, positions): weight 0 for a tap outside the axis, its position clipped."""
    low = np.floor(coords)
    frac = coords - low
    first = low.astype(np.int64)
    taps = []
    for position, weight in ((first, 1 - frac), (first + 1, frac)):
        outside = (position < 0) | (position >= size)
        taps.append((np.where(outside, 0.0, weight), np.clip(position, 0, size - 1)))
    return taps


class Resampling:
    """out = M @ picture + fill * (1 - row sums of M), on pictures as pixel columns (see doc).

    M has exactly four entries per output pixel, its bilinear taps in the order (0, 0),
    (0, 1), (1, 0), (1, 1) (a tap outside the source weighted 0), so its CSR arrays are
    written directly, with nothing to sort; its transpose is the same arrays read as CSC,
    so the adjoint costs no conversion either.
    """

    def __init__(
        self, source: tuple[int, int], weights: np.ndarray, columns: np.ndarray, inside: np.ndarray
    ) -> None:
        """M from each output pixel's four tap weights and source pixels ([n, 4] float32 and
        int32) and the sum of its weights [n]."""
        height, width = source
        self.source = source
        starts = np.arange(0, weights.size + 1, 4, dtype=np.int32)
        self.matrix = scipy.sparse.csr_matrix(
            (weights.ravel(), columns.ravel(), starts),
            shape=(len(weights), height * width),
        )
        self.fill = (FILL * (1.0 - inside)).astype(np.float32)

    @classmethod
    def at(cls, source: tuple[int, int], rows: np.ndarray, cols: np.ndarray) -> Resampling:
        """Bilinear samples of a `source`-sized picture at (rows, cols), real coordinates."""
        return cls._combined(source, _taps(rows, source[0]), _taps(cols, source[1]))

    @classmethod
    def grid(cls, source: tuple[int, int], rows: np.ndarray, cols: np.ndarray) -> Resampling:
        """Bilinear samples at every (rows[i], cols[j]), row-major: an output grid whose rows
        and columns sample the source independently (a shift and a scale)."""
        return cls._combined(source, _taps(rows[:, None], source[0]), _taps(cols[None], source[1]))

    @classmethod
    def _combined(
        cls,
        source: tuple[int, int],
        rows: list[tuple[np.ndarray, np.ndarray]],
        cols: list[tuple[np.ndarray, np.ndarray]],
    ) -> Resampling:
        """M from the row taps and column taps of the output pixels (arrays that broadcast
        to the output's shape)."""
        shape = np.broadcast_shapes(rows[0][0].shape, cols[0][0].shape)
        weights = np.empty((*shape, 4), np.float32)
        columns = np.empty((*shape, 4), np.int32)
        for tap, ((row_weight, row), (col_weight, col)) in enumerate(itertools.product(rows, cols)):
            np.multiply(row_weight, col_weight, out=weights[..., tap], casting="unsafe")
            columns[..., tap] = row * source[1] + col
        # The weights inside the source: the product of each axis's share inside it.
        inside = (rows[0][0] + rows[1][0]) * (cols[0][0] + cols[1][0])
        return cls(source, weights.reshape(-1, 4), columns.reshape(-1, 4), inside.ravel())

    def apply(self, columns: np.ndarray) -> np.ndarray:
        """Resampled pictures, as columns: [source pixels, K] -> [output pixels, K]."""
        return self.matrix @ columns + self.fill[:, None]

    def adjoint(self, columns: np.ndarray) -> np.ndarray:
        """The gradient w.r.t. the source columns, from the gradient w.r.t. the output."""
        return self.matrix.T @ columns


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
        rows = (np.arange(scaled[0]) + 0.5) * crop[0] / scaled[0] - 0.5
        cols = (np.arange(scaled[1]) + 0.5) * crop[1] / scaled[1] - 0.5
        rows += draw.first_offset[0] - PAD
        cols += draw.first_offset[1] - PAD
        self._stages = [Resampling.grid(size, rows, cols)]
        # Stage 2: rotate about the centre, then jitter: output (i, j) is rotated-image pixel
        # (i + offset), which samples the scaled picture at the inverse rotation of it.
        final = (scaled[0] - SECOND_JITTER, scaled[1] - SECOND_JITTER)
        centre = ((scaled[0] - 1) / 2, (scaled[1] - 1) / 2)
        dy = (np.arange(final[0]) + draw.second_offset[0] - centre[0])[:, None]
        dx = (np.arange(final[1]) + draw.second_offset[1] - centre[1])[None, :]
        angle = math.radians(draw.angle)
        cos, sin = math.cos(angle), math.sin(angle)
        source_rows = cos * dy + sin * dx + centre[0]
        source_cols = -sin * dy + cos * dx + centre[1]
        self._stages.append(Resampling.at(scaled, source_rows, source_cols))
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
