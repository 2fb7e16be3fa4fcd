"""Non-negative least squares checked without scipy's nnls or the package's projection.

`kkt_violation` measures how far coefficients are from optimal (the Karush-Kuhn-Tucker
conditions of min |x - c @ D| subject to c >= 0); `nnls_by_active_sets` solves small problems
exactly by trying every set of active directions with plain least squares.
"""

from __future__ import annotations

import itertools

import numpy as np


def kkt_violation(directions: np.ndarray, x: np.ndarray, c: np.ndarray) -> float:
    """The worst KKT violation of coefficients `c` for x ~ c @ directions, relative to |D x|.

    At the optimum: c >= 0; the gradient g = D (D^T c - x) is >= 0 where c == 0 and == 0 where
    c > 0 (so c * g == 0 everywhere).
    """
    d = np.asarray(directions, np.float64)
    x = np.asarray(x, np.float64)
    c = np.asarray(c, np.float64)
    gradient = d @ (d.T @ c - x)
    scale = float(np.abs(d @ x).max()) + 1e-12
    return max(
        float(-c.min()),
        float(-gradient[c == 0].min(initial=0.0)) / scale,
        float(np.abs(gradient[c > 0]).max(initial=0.0)) / scale,
    )


def nnls_by_active_sets(directions: np.ndarray, x: np.ndarray) -> np.ndarray:
    """The exact NNLS coefficients of x on a few linearly independent directions (k <= ~8).

    Every subset of directions is solved by unconstrained least squares; of the subsets whose
    solution is non-negative, the one with the smallest residual wins.
    """
    d = np.asarray(directions, np.float64)
    x = np.asarray(x, np.float64)
    k = d.shape[0]
    best, best_residual = np.zeros(k), float(np.linalg.norm(x))
    for size in range(1, k + 1):
        for subset in itertools.combinations(range(k), size):
            chosen = list(subset)
            solution, *_ = np.linalg.lstsq(d[chosen].T, x, rcond=None)
            if solution.min() < 0:
                continue
            full = np.zeros(k)
            full[chosen] = solution
            residual = float(np.linalg.norm(x - full @ d))
            if residual < best_residual - 1e-12:
                best, best_residual = full, residual
    return best


def ranked(coefficients: np.ndarray, k: int, decimals: int = 6) -> list[int]:
    """The k strongest directions of one position, values compared to `decimals` places, ties
    to the lower index (float noise in an oracle must not reorder equal values)."""
    rounded = np.round(np.asarray(coefficients, np.float64), decimals).tolist()
    return sorted(range(len(rounded)), key=lambda i: (-rounded[i], i))[:k]
