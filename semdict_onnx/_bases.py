"""Bases of a layer's activation space: neurons, NMF groups, and dictionaries of directions.

A `Basis` is k directions over a layer's channels (a k x channels matrix). Activations are read
in it by non-negative least squares: at each position, the non-negative coefficients whose mix
of the directions comes closest to the activation vector (scipy.optimize.nnls, which works for
any directions, negative entries and all, and is exact rather than iterative). The neuron basis
is the identity: its coefficients are the activations themselves. `Basis.save` and
`Basis.load` keep a basis as a small .npz file that names its layer and channel count, which
are checked when it is used; `resolve_basis` turns what a user passes into a checked Basis.
NMF groups and fitted dictionaries are made in _nmf.py. scipy is imported only when a basis
other than the neurons is used, so that dictionaries of neurons start quickly.
"""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path
from typing import Any

import numpy as np

from ._atomic import write_bytes_atomic
from ._checks import positive_int
from ._paths import local_path
from .errors import ActivationsError, BasisError

NEURONS = "neurons"
NMF_METHOD = "nmf"
GIVEN = "given"
METHODS = (NEURONS, NMF_METHOD, GIVEN)
UNITS = {NEURONS: "channel", NMF_METHOD: "group", GIVEN: "direction"}
FILE_KIND = "semdict_onnx.basis"
FILE_SCHEMA = 1
# Above this condition number of the directions' Gram matrix, projection solves the full
# channels x k problem instead of the k x k one reduced through its Cholesky factor.
MAX_GRAM_CONDITION = 1e8


class Basis:
    """k directions over a layer's channels, and the non-negative projection onto them.

    `components` is a float32 [k, channels] matrix, one direction per row. `method` says where
    it came from: "neurons" (the identity), "nmf" (fitted by `factorize` or `fit_basis`) or
    "given" (a user's own matrix, for example a sparse autoencoder's decoder).
    """

    def __init__(
        self,
        components: np.ndarray,
        *,
        layer: str | None = None,
        method: str = GIVEN,
        images_seen: int | None = None,
    ) -> None:
        matrix = np.asarray(components)
        if matrix.ndim != 2 or 0 in matrix.shape or not np.issubdtype(matrix.dtype, np.number):
            raise BasisError(
                f"a basis is a numeric (k x channels) matrix, one direction per row, not "
                f"{matrix.dtype} {matrix.shape}"
            )
        matrix = matrix.astype(np.float32)
        if not np.isfinite(matrix).all():
            raise BasisError("the basis contains NaN or infinity")
        empty = np.nonzero(~matrix.any(axis=1))[0]
        if empty.size:
            raise BasisError(
                f"basis direction(s) {', '.join(map(str, empty[:10]))} are all zeros; "
                "every direction needs at least one non-zero channel"
            )
        if method not in METHODS:
            raise BasisError(f"basis method must be one of {', '.join(METHODS)}, not {method!r}")
        self.components = matrix
        self.components.flags.writeable = False
        self.layer = layer
        self.method = method
        self.images_seen = images_seen
        self._solver: _NonNegativeSolver | None = None

    @classmethod
    def neurons(cls, channels: int, layer: str | None = None) -> Basis:
        """The neuron basis of a layer: one direction per channel (the identity)."""
        size = positive_int(channels, "channels")
        return cls(np.eye(size, dtype=np.float32), layer=layer, method=NEURONS)

    @property
    def k(self) -> int:
        """The number of directions."""
        return self.components.shape[0]

    @property
    def channels(self) -> int:
        """The number of channels of the layer the directions live in."""
        return self.components.shape[1]

    @property
    def unit(self) -> str:
        """What one direction is called on a page: channel, group or direction."""
        return UNITS[self.method]

    @property
    def fingerprint(self) -> str:
        """A short hash of the method and directions, to tell which basis a spritemap pictures."""
        digest = hashlib.sha256(f"{self.method}:{self.k}x{self.channels}:".encode())
        digest.update(np.ascontiguousarray(self.components).tobytes())
        return digest.hexdigest()[:16]

    def describe(self) -> str:
        """A short human description, e.g. "6 NMF groups of mixed4d over 200 images"."""
        plural = "s" if self.k != 1 else ""
        what = {
            NEURONS: f"{self.k} neuron{plural}",
            NMF_METHOD: f"{self.k} NMF group{plural}",
            GIVEN: f"{self.k} given direction{plural}",
        }[self.method]
        where = f" of {self.layer}" if self.layer else ""
        seen = self.images_seen
        over = f" over {seen} image{'s' if seen != 1 else ''}" if seen is not None else ""
        return f"{what}{where}{over}"

    def check_for(self, layer: str, channels: int) -> None:
        """Refuse, with a clear error, a basis made for another layer or channel count."""
        if self.channels != channels or (self.layer is not None and self.layer != layer):
            made_for = f"layer {self.layer!r}" if self.layer is not None else "a layer"
            raise BasisError(
                f"this basis ({self.describe()}) is for {made_for} with {self.channels} "
                f"channels, but {layer!r} with {channels} channels was asked for; fit one for "
                f"{layer!r} (fit_basis(images, {layer!r}, k)) or pick the basis's layer"
            )

    def project(self, activations: np.ndarray) -> np.ndarray:
        """Non-negative coefficients [..., k] of activations [..., channels] on the directions.

        For the neuron basis these are the activations themselves; otherwise, per position,
        the non-negative least-squares solution of activations ~ coefficients @ components.
        """
        acts = np.asarray(activations, dtype=np.float32)
        if acts.ndim < 1 or acts.shape[-1] != self.channels:
            raise ActivationsError(
                f"activations shaped {acts.shape} do not end in this basis's {self.channels} "
                "channels; pass [..., channels] activations of the basis's layer"
            )
        if not np.isfinite(acts).all():
            raise ActivationsError("the activations contain NaN or infinity")
        if self.method == NEURONS:
            return acts.copy()
        if self._solver is None:
            self._solver = _NonNegativeSolver(self.components)
        flat = acts.reshape(-1, self.channels)
        return self._solver.solve(flat).reshape(*acts.shape[:-1], self.k)

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the basis as a small .npz file (layer, channels, method, directions) atomically."""
        target = Path(path).expanduser()
        if target.suffix.lower() != ".npz":
            raise BasisError(f"a basis is saved as .npz; {target.name!r} does not end in .npz")
        buffer = io.BytesIO()
        np.savez_compressed(
            buffer,
            kind=np.array(FILE_KIND),
            schema=np.array(FILE_SCHEMA),
            layer=np.array(self.layer if self.layer is not None else ""),
            channels=np.array(self.channels),
            method=np.array(self.method),
            images_seen=np.array(-1 if self.images_seen is None else self.images_seen),
            components=self.components,
        )
        return write_bytes_atomic(target, buffer.getvalue())

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str],
        layer: str | None = None,
        channels: int | None = None,
    ) -> Basis:
        """Read a basis `save` wrote; with `layer` / `channels`, refuse one made for others."""
        source = local_path(path)
        try:
            with np.load(source, allow_pickle=False) as data:
                fields = {name: data[name] for name in data.files}
        except (OSError, ValueError, EOFError) as exc:
            raise BasisError(
                f"cannot read a basis from {str(source)!r} ({exc}); Basis.load reads the .npz "
                "files Basis.save and fit_basis write"
            ) from exc
        if fields.get("kind") is None or str(fields["kind"]) != FILE_KIND:
            raise BasisError(f"{str(source)!r} is not a basis file written by Basis.save")
        if int(fields.get("schema", -1)) != FILE_SCHEMA:
            raise BasisError(
                f"{str(source)!r} is a version-{int(fields.get('schema', -1))} basis file; this "
                f"version of semdict_onnx reads version {FILE_SCHEMA}: fit it again"
            )
        try:
            seen = int(fields["images_seen"])
            basis = cls(
                fields["components"],
                layer=str(fields["layer"]) or None,
                method=str(fields["method"]),
                images_seen=None if seen < 0 else seen,
            )
            declared = int(fields["channels"])
        except KeyError as exc:
            raise BasisError(f"basis file {str(source)!r} lacks {exc}") from exc
        if declared != basis.channels:
            raise BasisError(
                f"basis file {str(source)!r} says {declared} channels but holds directions over "
                f"{basis.channels}; the file is damaged: fit it again"
            )
        if channels is not None:
            basis.check_for(layer if layer is not None else str(basis.layer), channels)
        elif layer is not None and basis.layer is not None and basis.layer != layer:
            raise BasisError(
                f"basis file {str(source)!r} is for layer {basis.layer!r} ({basis.channels} "
                f"channels), not {layer!r}; fit one for {layer!r} with fit_basis"
            )
        return basis

    def __repr__(self) -> str:
        return f"Basis({self.describe()}, {self.k}x{self.channels})"


class _NonNegativeSolver:
    """Non-negative least squares against fixed directions, position by position.

    With k independent directions the channels x k problem min |D^T c - x| is reduced to the
    k x k problem min |R c - q|, where R^T R = D D^T (Cholesky) and q = R^-T D x: the same
    minimiser, far cheaper when channels >> k. Otherwise each position solves the full one.
    """

    def __init__(self, components: np.ndarray) -> None:
        from scipy.linalg import LinAlgError, cholesky

        self._directions = components.astype(np.float64)
        self._factor: np.ndarray | None = None
        gram = self._directions @ self._directions.T
        if self._directions.shape[0] <= self._directions.shape[1]:
            try:
                if np.linalg.cond(gram) < MAX_GRAM_CONDITION:
                    self._factor = cholesky(gram, lower=False)
            except LinAlgError:
                self._factor = None

    def solve(self, flat: np.ndarray) -> np.ndarray:
        """Coefficients [positions, k] for activations [positions, channels]."""
        from scipy.linalg import solve_triangular
        from scipy.optimize import nnls

        k = self._directions.shape[0]
        out = np.zeros((flat.shape[0], k), np.float32)
        live = np.nonzero(flat.any(axis=1))[0]
        if self._factor is not None:
            targets = solve_triangular(
                self._factor, self._directions @ flat[live].astype(np.float64).T, trans="T"
            ).T
            matrix = self._factor
        else:
            targets = flat[live].astype(np.float64)
            matrix = self._directions.T
        for row, target in zip(live, targets, strict=True):
            out[row] = nnls(matrix, target, maxiter=50 * k)[0]
        return out


def resolve_basis(spec: Any, layer: str, channels: int) -> Basis:
    """The Basis `spec` names for `layer` (checked against its name and channel count).

    `spec` is None or "neurons" (the neuron basis), a Basis, or a (k x channels) array of
    directions (a given basis).
    """
    if spec is None or (isinstance(spec, str) and spec == NEURONS):
        return Basis.neurons(channels, layer)
    if isinstance(spec, str):
        hint = (
            f" (groups fitted on each image alone differ between images: fit one dictionary "
            f"over many with fit_basis(images, {layer!r}, k) and pass it)"
            if spec == NMF_METHOD
            else ""
        )
        raise BasisError(
            f"basis {spec!r} cannot be used here{hint}; pass 'neurons', a Basis "
            "(fit_basis, Basis.load) or a (k x channels) array of directions"
        )
    basis = spec if isinstance(spec, Basis) else Basis(_as_matrix(spec, channels))
    basis.check_for(layer, channels)
    return basis


def _as_matrix(spec: Any, channels: int) -> np.ndarray:
    """A user's directions as a 2-D array, or a clear error."""
    try:
        matrix = np.asarray(spec, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise BasisError(
            f"a basis must be 'neurons', a Basis or a (k x {channels}) array of directions, "
            f"not {type(spec).__name__} ({exc})"
        ) from exc
    return matrix
