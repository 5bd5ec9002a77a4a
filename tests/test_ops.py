"""`keras_residual._ops`: the fused forms (one `addmm` / `add` on torch)
compute what their docstrings say, keep float64, and take the one-op path on
torch."""

import keras
import numpy as np
import pytest
from keras import ops

from keras_residual import _ops
from keras_residual._keras_compat import float64_ops
from keras_residual.dynamics.lyapunov._backends import get_backend

RNG = np.random.default_rng(0)
X = RNG.normal(size=(3, 4))
K = RNG.normal(size=(4, 5))
C = RNG.normal(size=(3, 5))
BIAS = RNG.normal(size=(5,))


@pytest.mark.parametrize("c", [C, BIAS], ids=["rows", "bias"])
@pytest.mark.parametrize("scale", [1.0, 0.1])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_matmul_add(c, scale, dtype):
    # float64 as the Lyapunov code runs it (JAX needs x64 on; Keras' ops keep it).
    with get_backend().compute_scope(dtype), float64_ops():
        x, k, c_t = (ops.convert_to_tensor(a.astype(dtype)) for a in (X, K, c))
        out = _ops.matmul_add(x, k, c_t, scale)
    assert keras.backend.standardize_dtype(out.dtype) == dtype
    # float32: one 4-term product and one add, ~1e-6 relative.
    tol = 1e-12 if dtype == "float64" else 1e-5
    np.testing.assert_allclose(ops.convert_to_numpy(out), X @ K + scale * c, rtol=tol, atol=tol)


@pytest.mark.parametrize("a", [C, None], ids=["sum", "scale only"])
@pytest.mark.parametrize("scale", [1.0, -0.3])
def test_add_scaled(a, scale):
    y = ops.convert_to_tensor(X[:, :1] * np.ones((3, 5)))
    out = _ops.add_scaled(None if a is None else ops.convert_to_tensor(a), y, scale)
    expected = (0 if a is None else a) + scale * X[:, :1] * np.ones((3, 5))
    np.testing.assert_allclose(ops.convert_to_numpy(out), expected, rtol=1e-6, atol=1e-6)


@pytest.mark.skipif(keras.backend.backend() != "torch", reason="by design: torch's addmm path")
def test_matmul_add_is_one_addmm_on_torch():
    import torch

    x, k, c = (torch.tensor(a, dtype=torch.float32, requires_grad=True) for a in (X, K, C))
    out = _ops.matmul_add(x, k, c, 0.5)
    assert out.grad_fn.name() == "AddmmBackward0"
    out.sum().backward()
    np.testing.assert_allclose(c.grad.numpy(), np.full(C.shape, 0.5), rtol=1e-6)
    # Mixed dtypes fall back to matmul then add, still correct.
    mixed = _ops.matmul_add(x.detach(), k.detach(), torch.tensor(C, dtype=torch.float64))
    np.testing.assert_allclose(mixed.numpy(), X @ K + C, rtol=1e-5, atol=1e-5)
