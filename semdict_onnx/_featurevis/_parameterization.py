"""Lucid's image parameterization: a Fourier spectrum with 1/f decay, decorrelated colour.

The optimized parameters are the real and imaginary parts of each image's 2-D spectrum per
colour channel (a float32 array [N, 2, 3, H, W // 2 + 1 or + 2]). An image is made from them
as in Lucid's `param.image(size, fft=True, decorrelate=True)`: scale each frequency by
1 / max(|f|, 1 / size) (so coarse structure moves as fast as fine), inverse real FFT, divide
by 4, mix the three channels with the square root of ImageNet's colour covariance (so the
parameters live in a decorrelated colour space), and a sigmoid to [0, 1]. `backward` is the
exact adjoint of each of these steps, in reverse: the gradient of an objective with respect
to the parameters, given its gradient with respect to the image. scipy.fft does the
transforms (float32 throughout, deterministic).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.fft

# The square root of ImageNet's colour covariance (Lucid's color_correlation_svd_sqrt),
# scaled so that its largest column has unit length, as Lucid does.
COLOUR_CORRELATION_SQRT = np.array(
    [[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]], np.float32
)
COLOUR_MIX = COLOUR_CORRELATION_SQRT / np.linalg.norm(COLOUR_CORRELATION_SQRT, axis=0).max()
# The standard deviation of the random initial spectrum, and Lucid's final division.
INITIAL_SCALE = 0.01
SPECTRUM_DIVISOR = 4.0
_MIX = (COLOUR_MIX / np.float32(SPECTRUM_DIVISOR)).astype(np.float32)


@dataclass
class _Saved:
    """What `image` keeps for `backward`: the sigmoid's output."""

    picture: np.ndarray


class FourierImage:
    """Images of `size` (height, width) made from Fourier-space parameters (see module doc)."""

    def __init__(self, size: tuple[int, int], decay_power: float = 1.0) -> None:
        self.height, self.width = size
        # An odd width keeps one more frequency and crops one pixel, as Lucid does.
        self._fft_width = self.width + self.width % 2
        fy = np.fft.fftfreq(self.height)[:, None]
        fx = np.fft.rfftfreq(self._fft_width)[None, :]
        frequencies = np.sqrt(fx * fx + fy * fy)
        floor = 1.0 / max(self.width, self.height)
        scale = np.maximum(frequencies, floor) ** -decay_power * np.sqrt(self.width * self.height)
        self._scale = scale.astype(np.float32)
        # The adjoint of the inverse real FFT counts each frequency column once for the
        # columns it holds alone (0 and the Nyquist column) and twice for the others.
        columns = np.full(fx.shape[1], 2.0)
        columns[0] = 1.0
        columns[-1] = 1.0
        adjoint = columns / (self.height * self._fft_width)
        self._adjoint_scale = (adjoint * self._scale).astype(np.float32)

    @property
    def parameter_shape(self) -> tuple[int, int, int, int]:
        """The shape of one image's parameters: (real/imaginary, colour, rows, frequencies)."""
        return (2, 3, *self._scale.shape)

    def initial(self, seed: int, keys: list[int]) -> np.ndarray:
        """Random initial parameters [N, ...]: image n from a generator of (seed, keys[n])."""
        return np.stack(
            [
                np.random.default_rng([seed, key])
                .normal(0.0, INITIAL_SCALE, self.parameter_shape)
                .astype(np.float32)
                for key in keys
            ]
        )

    def image(self, params: np.ndarray) -> tuple[np.ndarray, _Saved]:
        """Images [N, H, W, 3] in [0, 1] from parameters, and what `backward` needs."""
        spectrum = np.empty(params[:, 0].shape, np.complex64)
        spectrum.real = params[:, 0] * self._scale
        spectrum.imag = params[:, 1] * self._scale
        planes = scipy.fft.irfft2(spectrum, s=(self.height, self._fft_width))
        planes = planes[..., : self.width]
        picture = np.empty((len(params), self.height, self.width, 3), np.float32)
        _mix(planes, picture, _MIX)
        np.negative(picture, out=picture)
        np.exp(picture, out=picture)
        picture += np.float32(1)
        np.reciprocal(picture, out=picture)
        return picture, _Saved(picture)

    def backward(self, grad: np.ndarray, saved: _Saved) -> np.ndarray:
        """The gradient with respect to the parameters, from the gradient w.r.t. the images."""
        picture = saved.picture
        mixed = grad * picture
        mixed *= np.float32(1.0) - picture
        planes = np.zeros((len(grad), 3, self.height, self._fft_width), np.float32)
        _unmix(mixed, planes[..., : self.width], _MIX)
        spectrum = scipy.fft.rfft2(planes)
        spectrum *= self._adjoint_scale
        out = np.empty((len(grad), 2, *spectrum.shape[1:]), np.float32)
        out[:, 0] = spectrum.real
        out[:, 1] = spectrum.imag
        return out


def _mix(planes: np.ndarray, out: np.ndarray, matrix: np.ndarray) -> None:
    """out[n, h, w, d] = sum_c matrix[d, c] * planes[n, c, h, w] (elementwise: a 3x3 product
    runs slowly through BLAS)."""
    for d in range(3):
        target = out[..., d]
        np.multiply(planes[:, 0], matrix[d, 0], out=target)
        for c in (1, 2):
            target += planes[:, c] * matrix[d, c]


def _unmix(grads: np.ndarray, out: np.ndarray, matrix: np.ndarray) -> None:
    """The adjoint of `_mix`: out[n, c, h, w] = sum_d matrix[d, c] * grads[n, h, w, d]."""
    for c in range(3):
        target = out[:, c]
        np.multiply(grads[..., 0], matrix[0, c], out=target)
        for d in (1, 2):
            target += grads[..., d] * matrix[d, c]
