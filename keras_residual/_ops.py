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
    autograd node. `a` None: `scale * y`. `scale` 1: `ops.add(a, y)` (on
    TensorFlow a BiasAdd for a 1-D `y`, as Keras' cells add their bias)."""
    if _torch is not None:
        if a is None:
            return _torch.mul(y, scale)
        return _torch.add(a, y, alpha=scale)
    if a is None:
        return scale * y
    return ops.add(a, y) if scale == 1 else a + scale * y


def matmul_add(x, kernel, c, scale=1.0):
    """`x @ kernel + scale * c` for x (batch, j), a 2-D kernel (j, k) and `c`
    (batch, k) or (k,) (a bias). On torch one op, `torch.addmm(c, x, kernel,
    beta=scale)`, where a per-step loop pays per op and per autograd node
    (measured in `_wcrnn_kernels`); elsewhere `matmul` then `add_scaled`
    (where XLA fuses the add, or TensorFlow's BiasAdd is one op already)."""
    if _torch is not None:
        x, kernel, c = (ops.convert_to_tensor(t) for t in (x, kernel, c))
        if x.ndim == 2 and x.dtype == kernel.dtype == c.dtype:
            return _torch.addmm(c, x, kernel, beta=scale)
    return add_scaled(matmul(x, kernel), c, scale)


# The backend is fixed per process: resolved once, not in every step.
_torch = None
if keras.backend.backend() == "torch":
    import torch as _torch
