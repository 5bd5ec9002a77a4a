"""Fused WCRNN recurrences, one module per backend, each exposing

    wcrnn_scan(xp, h0, recurrent_kernel, coupling, activation, residual,
               go_backwards, return_sequences, residual_trainable)
        -> (last, outputs, h_last)

`xp` is the input projection x @ U + b for all steps, (batch, T, units),
computed by the caller in one matmul. `residual` is a built
`kr.residuals.Residual` or None. `outputs` is (batch, T, units) in processing
order when `return_sequences`, else None. `supports(...)` says whether the
backend's kernel honours a configuration (else the layer takes the generic
`keras.layers.RNN` path).
"""

import importlib

import keras


def get_kernel():
    """The fused-kernel module of the current backend, or None."""
    name = keras.backend.backend()
    if name not in ("jax", "torch", "tensorflow"):
        return None
    return importlib.import_module(f"keras_residual.layers._wcrnn_kernels.{name}")
