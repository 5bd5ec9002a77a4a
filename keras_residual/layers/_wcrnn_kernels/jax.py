"""Fused WCRNN recurrence for JAX: one `lax.scan`, autodiff through it."""

import jax
import jax.numpy as jnp


def supports(activation, residual, residual_trainable):
    return True


def wcrnn_scan(xp, h0, recurrent_kernel, coupling, activation, residual,
               go_backwards=False, return_sequences=True, residual_trainable=False):
    rho = None if residual is None else residual.prepare(xp.dtype)
    xs = jnp.swapaxes(xp, 0, 1)
    if go_backwards:
        xs = xs[::-1]

    def step(h, x_t):
        y = coupling * activation(x_t + h @ recurrent_kernel)
        h_new = y if rho is None else rho(h) + y
        return h_new, (h_new if return_sequences else None)

    h_last, hs = jax.lax.scan(step, h0, xs)
    outputs = jnp.swapaxes(hs, 0, 1) if return_sequences else None
    return h_last, outputs, h_last
