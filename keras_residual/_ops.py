"""Small `keras.ops` wrappers shared by the library."""

import keras
from keras import ops


def matmul(x, kernel):
    """`x @ kernel` for x of shape (..., j) and a 2-D kernel (j, k).

    Same as `ops.matmul`, except that float64 stays float64: Keras 3.15's
    torch and jax `matmul` promote through `result_type`, which there maps
    float64 to float32 (on jax even inside `jax.enable_x64`), and float64 is
    what validation runs (finite differences, Lyapunov spectra) rely on.
    `einsum` keeps the dtype.
    """
    if keras.backend.standardize_dtype(x.dtype) == "float64":
        return ops.einsum("...j,jk->...k", x, kernel)
    return ops.matmul(x, kernel)


def add_scaled(a, y, scale):
    """`a + scale * y` for a Python float `scale`. On torch one fused op
    (`torch.add(a, y, alpha=scale)`): `scale * y` there wraps the float in
    a new tensor per call, and a per-step loop pays for each op and for its
    autograd node. `a` None: `scale * y`."""
    if _torch is not None:
        if a is None:
            return _torch.mul(y, scale)
        return _torch.add(a, y, alpha=scale)
    return scale * y if a is None else a + scale * y


# The backend is fixed per process: resolved once, not in every step.
_torch = None
if keras.backend.backend() == "torch":
    import torch as _torch
