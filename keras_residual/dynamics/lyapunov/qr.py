"""The QR of the loop, with its sign fix, written once on `keras.ops`.

`qr(Z, method)` returns `(Q, log|diag R|)` with the signs of Q's columns
fixed so that diag(R) > 0, for a batch Z (batch, S, k):

- "householder": the backend's LAPACK-style QR (`keras.ops.linalg.qr`);
  exact to working precision, differentiable on every backend. PyTorch
  runs its own (`_backends/torch.py`: the same three calls without Keras'
  per-op overhead, which an eager loop pays at every step).
- "cholesky": CholeskyQR2 (R1 = chol(Z^T Z), Q1 = Z R1^-1, repeated once
  on Q1) on column-scaled Z: matrix products only, fast on GPUs where
  batched small QRs are slow; falls back to Householder for a step whose
  Gram matrix is not numerically positive definite.

`qr_with_r(Z)` also returns the signed R (covariant vectors need it).
"""

import keras
import numpy as np
from keras import ops

from keras_residual.dynamics.lyapunov._backends import get_backend


def _negative_columns(R):
    """Where diag(R) < 0, as a (batch, 1, k) mask over Q's columns."""
    return ops.expand_dims(ops.diagonal(R, axis1=-2, axis2=-1) < 0, -2)


def householder(Z):
    """`(Q, log|diag R|)` of the signed Householder QR."""
    backend = get_backend()
    if hasattr(backend, "householder"):
        return backend.householder(Z)
    Q, R = ops.linalg.qr(Z)
    return (ops.where(_negative_columns(R), ops.negative(Q), Q),
            ops.log(ops.abs(ops.diagonal(R, axis1=-2, axis2=-1))))


def qr_with_r(Z):
    """`(Q, R)` with diag(R) > 0 (Householder)."""
    Q, R = ops.linalg.qr(Z)
    negative = _negative_columns(R)
    rows = ops.transpose(negative, (0, 2, 1))  # R's rows flip with Q's columns
    return ops.where(negative, ops.negative(Q), Q), ops.where(rows, ops.negative(R), R)


def _cholesky_pass(Z):
    G = ops.matmul(ops.transpose(Z, (0, 2, 1)), Z)
    L = get_backend().safe_cholesky(G)
    # Q L^T = Z, i.e. Q^T = L^-1 Z^T.
    Qt = ops.linalg.solve_triangular(L, ops.transpose(Z, (0, 2, 1)), lower=True)
    return ops.transpose(Qt, (0, 2, 1)), ops.diagonal(L, axis1=-2, axis2=-1)


def cholesky_qr2(Z):
    """`(Q, log|diag R|)` by CholeskyQR2, Householder where it breaks down."""
    tol = 8.0 * float(np.sqrt(np.finfo(keras.backend.standardize_dtype(Z.dtype)).eps))
    norms = ops.sqrt(ops.sum(ops.square(Z), axis=-2))
    norms = ops.where(norms > 0, norms, ops.ones_like(norms))
    Q1, d1 = _cholesky_pass(Z / ops.expand_dims(norms, -2))
    Q2, d2 = _cholesky_pass(Q1)
    log_d = ops.log(d1) + ops.log(d2) + ops.log(norms)
    ok = (ops.all(ops.isfinite(log_d)) & ops.all(ops.isfinite(Q2))
          & (ops.min(d1) >= ops.cast(tol, d1.dtype)))
    return ops.cond(ok, lambda: (Q2, log_d), lambda: householder(Z))


def qr(Z, method):
    """`(Q, log|diag R|)` of Z by `method` ("householder" or "cholesky")."""
    return householder(Z) if method == "householder" else cholesky_qr2(Z)
