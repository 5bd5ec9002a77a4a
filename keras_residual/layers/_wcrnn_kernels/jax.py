"""Fused WCRNN recurrence for JAX: one `lax.scan`, with a hand-written backward pass.

For a fixed residual and an activation with a known derivative the
recurrence is a `jax.custom_vjp`: the forward scan keeps every state and
activation; the backward scan carries only the state's gradient (one
`(B, N) @ (N, N)` product per step), and the recurrent kernel's gradient is
one `(T*B, N)^T (T*B, N)` product after the loop, instead of autodiff's
accumulation of `dW` step by step. Both scans run `_wcrnn_step` (the step and
its backward pass, written once with `keras.ops`). A trainable residual, or
an activation without a known derivative, runs one `lax.scan` of the same
step with JAX's autodiff through it.

The input projection `x_t @ U + b` is formed per step inside the scan for
narrow inputs (its gradients are then one product each after the backward
scan) and as one matmul before the scan for wide ones: `projects_per_step`.
"""

import functools

import jax
import jax.numpy as jnp

from keras_residual import _activations
from keras_residual import residuals as residuals_lib
from keras_residual.layers import _wcrnn_kernels
from keras_residual.layers import _wcrnn_step


# Keras' loop is a lax.scan under XLA: a rotation's elementwise ops fuse and
# beat h @ R^T (a training step at T = 100: 11.4 ms against 12.7, SimpleRNN
# 9.2; see `_wcrnn_kernels`).
CELL_DENSE_FORMS = False


def supports(activation, residual, residual_trainable):
    return True


def _time_major(sequences, go_backwards):
    xs = jnp.swapaxes(sequences, 0, 1)
    return xs[::-1] if go_backwards else xs


def projects_per_step(features, units):
    """Whether the scan forms `x_t @ U + b` per step (few features) rather
    than for all steps before it. Measured (fused layer, 128 units, batch 64,
    2-core Intel Xeon, T = 784, training / inference step, per step vs before
    the scan): 1 feature 83 / 17 ms vs 100 / 30; 16: 90 / 20 vs 109 / 32;
    48: 100 / 26 vs 120 / 36; at T = 100, 128 features: 12.7 / 4.6 vs
    11.6 / 4.0; 512: 39 / 17 vs 23 / 8. A (batch, T, units) projection costs
    memory traffic that a narrow input does not; a wide one is a large,
    well-threaded matmul."""
    return 2 * features <= units


def _project_step(x_t, kernel, bias, per_step):
    if not per_step:
        return x_t  # projected before the scan
    xp = jnp.matmul(x_t, kernel)
    return xp if bias is None else xp + bias


@functools.lru_cache(maxsize=64)
def _custom(coupling, activation, derivative, form_type, has_bias, per_step,
            return_sequences):
    """The custom-VJP recurrence for one configuration (cached: JAX traces it
    once per configuration and input shape)."""

    def run(xs, kernel, bias, h0, W, tensors, keep):
        form = form_type.replace(tensors)
        bias = bias if has_bias else None

        def body(h, x_t):
            xp = _project_step(x_t, kernel, bias, per_step)
            h_new, y = _wcrnn_step.step(xp, h, W, coupling, activation, form)
            # Kept for the backward pass: the step's input state and activation.
            return h_new, ((h, y) if keep else (h_new if return_sequences else None))

        return jax.lax.scan(body, h0, xs)

    @jax.custom_vjp
    def fused(xs, kernel, bias, h0, W, tensors):
        return run(xs, kernel, bias, h0, W, tensors, keep=False)

    def forward(xs, kernel, bias, h0, W, tensors):
        h_last, (states, ys) = run(xs, kernel, bias, h0, W, tensors, keep=True)
        hs = jnp.concatenate([states[1:], h_last[None]], axis=0) if return_sequences else None
        return (h_last, hs), (xs, kernel, bias, states, ys, W, tensors)

    def backward(saved, grads):
        xs, kernel, bias, states, ys, W, tensors = saved
        form = form_type.replace(tensors)
        grad_last, grad_hs = grads
        W_t = W.T  # a loop constant: see _wcrnn_step.backward

        def body(g, inputs):
            h, y, grad_h = inputs
            if grad_h is not None:
                g = g + grad_h
            g_prev, da = _wcrnn_step.backward(g, h, y, W_t, coupling, derivative, form)
            return g_prev, da

        extra = grad_hs if return_sequences else None
        # The last step's output gradient enters through grad_last (h_T is
        # both the last output and the final state).
        g0, grad_a = jax.lax.scan(body, grad_last, (states, ys, extra), reverse=True)
        grad_w = _wcrnn_step.recurrent_kernel_backward(states, grad_a)
        zeros = jax.tree_util.tree_map(jnp.zeros_like, tensors)
        if not per_step:  # xs is the projection: autodiff takes it from here
            return (grad_a, jnp.zeros_like(kernel), jnp.zeros_like(bias), g0,
                    grad_w.astype(W.dtype), zeros)
        grad_xs, grad_kernel, grad_bias = _wcrnn_step.projection_backward(
            grad_a, xs, kernel, has_bias)
        grad_bias = jnp.zeros_like(bias) if grad_bias is None else grad_bias.astype(bias.dtype)
        return grad_xs, grad_kernel, grad_bias, g0, grad_w.astype(W.dtype), zeros

    fused.defvjp(forward, backward)
    return fused


def wcrnn_scan(sequences, kernel, bias, h0, recurrent_kernel, coupling, activation, residual,
               go_backwards=False, return_sequences=True, residual_trainable=False):
    per_step = projects_per_step(kernel.shape[0], kernel.shape[1])
    if not per_step:
        sequences = _wcrnn_kernels.project(sequences, kernel, bias)
    xs = _time_major(sequences, go_backwards)
    form = residuals_lib.form_of(residual, h0.dtype)
    derivative = _activations.derivative(activation)
    if derivative is not None and not (residual_trainable and form.tensors):
        tensors = tuple(jax.lax.stop_gradient(t) for t in form.tensors)
        has_bias = per_step and bias is not None
        fused = _custom(float(coupling), activation, derivative, _FormKey(form), has_bias,
                        per_step, bool(return_sequences))
        kernel_in = kernel if per_step else jnp.zeros((), h0.dtype)
        bias_in = bias if has_bias else jnp.zeros((), h0.dtype)
        h_last, hs = fused(xs, kernel_in, bias_in, h0, recurrent_kernel, tensors)
    else:
        def body(h, x_t):
            xp = _project_step(x_t, kernel, bias, per_step)
            h_new, _ = _wcrnn_step.step(xp, h, recurrent_kernel, coupling, activation, form)
            return h_new, (h_new if return_sequences else None)

        h_last, hs = jax.lax.scan(body, h0, xs)
    outputs = jnp.swapaxes(hs, 0, 1) if return_sequences else None
    return h_last, outputs, h_last


class _FormKey:
    """A hashable stand-in for a form (its `key`), to cache compiled
    recurrences by."""

    def __init__(self, form):
        self.form = form
        self.key = form.key

    def replace(self, tensors):
        return self.form.replace(tensors)

    def __hash__(self):
        return hash(self.key)

    def __eq__(self, other):
        return isinstance(other, _FormKey) and self.key == other.key
