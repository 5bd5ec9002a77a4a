"""Fused WCRNN recurrences, one module per backend, each exposing

    wcrnn_scan(sequences, kernel, bias, h0, recurrent_kernel, coupling,
               activation, residual, go_backwards, return_sequences,
               residual_trainable)
        -> (last, outputs, h_last)

`sequences` is the (batch, T, features) input, `kernel` and `bias` (or None)
the input projection `xp_t = x_t @ U + b`: each kernel decides where to
form it (`project`, one matmul for all steps, in the torch kernel; per step
inside the compiled loop in the TensorFlow kernel, where a separate
(batch, T, units) projection costs more than the loop's own work; in the JAX
kernel per step for inputs narrower than half the units, else before the scan). `residual` is a built
`kr.residuals.Residual` or None. `outputs` is (batch, T, units) in processing
order when `return_sequences`, else None. `supports(...)` says whether the
backend's kernel honours a configuration (else the layer takes the generic
`keras.layers.RNN` path).

Each module also says whether `WCRNNCell`'s steps, run by Keras' own loop
on that backend, apply a form that `prefers_dense` (a rotation) as one
product `h @ R^T` (`CELL_DENSE_FORMS`): where the loop pays per op (PyTorch's
eager loop, TensorFlow's graph while-loop, where a gather's gradient is
costly) the product wins; where XLA compiles the loop (JAX) the elementwise
ops fuse and win. Measured (RNN(WCRNNCell), 128 units, batch 64, T = 100,
training step, 2-core Intel Xeon, ms; SimpleRNN / rotation as a product /
elementwise / folded into the recurrent product as h @ [W | R^T], an
earlier design): TensorFlow 10.5 / 12.5 / 28 / 18; torch 36 / 47 / 61 / 48;
JAX 9.2 / 12.7 / 11.4 / 17.6. The fold computes the gradient of the whole
(N, 2N) matrix every step, R's half for nothing.

On torch each step's `matmul` + add is one `addmm` (`_ops.matmul_add`: the
input projection with its bias, `xp + h @ W`, and a product form's
`h @ R^T + coupling * y`): 4 ops per step against SimpleRNN's 5. Measured
(RNN(WCRNNCell), training step, same machine, ms, before / after; SimpleRNN
241-256 at T = 784, 32 at T = 100): identity 262 / 241 and 35.0 / 33.3,
rotation 298 / 283 and 40.4 / 37.2, dense 296 / 274 and 41.4 / 37.2.
"""

import importlib

import keras
from keras import ops

from keras_residual import _ops


def get_kernel():
    """The fused-kernel module of the current backend, or None."""
    name = keras.backend.backend()
    if name not in ("jax", "torch", "tensorflow"):
        return None
    return importlib.import_module(f"keras_residual.layers._wcrnn_kernels.{name}")


def cell_dense_forms():
    """Whether `WCRNNCell` applies a form that `prefers_dense` as `h @ R^T`."""
    kernel = get_kernel()
    return kernel is not None and kernel.CELL_DENSE_FORMS


def project(sequences, kernel, bias):
    """The input projection `x @ U + b`: of all steps for (batch, T, features)
    `sequences`, of one step for (batch, features)."""
    return ops.matmul(sequences, kernel) if bias is None else _ops.matmul_add(
        sequences, kernel, bias)
