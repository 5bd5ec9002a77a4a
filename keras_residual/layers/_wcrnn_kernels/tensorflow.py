"""Fused WCRNN recurrence for TensorFlow.

For a fixed linear residual and an activation with a known derivative the
recurrence is a `tf.custom_gradient` whose forward and backward are each one
XLA-compiled `tf.while_loop` (per configuration, reused across calls):

Forward, per step:   a = xp_t + h @ W;  y = sigma(a);  h' = rho(h) + c y
Backward, per step:  g += dL/dh_t;  da = g * c sigma'(a);
                     g = rho^T(g) + da @ W^T
and dL/dW = sum_t h_t^T da_t as one matmul after the loop.

Other configurations (a trainable or nonlinear residual, another
activation) run one `tf.while_loop` with TensorFlow's autodiff through it.
"""

import tensorflow as tf

from keras_residual import _activations
from keras_residual import residuals as residuals_lib

_COMPILED = {}


def supports(activation, residual, residual_trainable):
    return True


def _custom_supported(activation, residual, residual_trainable):
    if _activations.derivative(activation) is None:
        return False
    return residual is None or (residual.linear and not residual_trainable)


def _time_major(xp, go_backwards):
    xs = tf.transpose(xp, (1, 0, 2))
    return tf.reverse(xs, axis=[0]) if go_backwards else xs


def _forward(xs, h0, W, params, coupling, activation, kind, phi, keep_pre):
    """Run the recurrence; returns all states (T+1, B, N) and, if keep_pre,
    all sigma(a_t) (T, B, N)."""
    form = (kind,) + tuple(params)
    steps = tf.shape(xs)[0]
    inputs = tf.TensorArray(xs.dtype, size=steps, element_shape=h0.shape).unstack(xs)
    states = tf.TensorArray(xs.dtype, size=steps + 1, element_shape=h0.shape).write(0, h0)
    ys = tf.TensorArray(xs.dtype, size=steps if keep_pre else 0, element_shape=h0.shape)

    def body(t, h, states, ys):
        y = activation(inputs.read(t) + tf.matmul(h, W))
        h_new = coupling * y
        if kind != "none":
            h_new = residuals_lib.apply_linear_form(form, phi(h) if phi else h) + h_new
        h_new = tf.ensure_shape(h_new, h.shape)
        if keep_pre:
            ys = ys.write(t, y)
        return t + 1, h_new, states.write(t + 1, h_new), ys

    _, _, states, ys = tf.while_loop(
        lambda t, *_: t < steps, body, (tf.constant(0), h0, states, ys),
        maximum_iterations=steps, parallel_iterations=32,
    )
    return states.stack(), (ys.stack() if keep_pre else None)


def _backward(grad_hs, hs, ys, W, params, coupling, derivative, kind):
    form = (kind,) + tuple(params)
    steps = tf.shape(ys)[0]
    # Each known derivative is a function of y = sigma(a) alone (relu: y > 0).
    slope = coupling * derivative(ys, ys)
    w_t = tf.transpose(W)
    grad_a = tf.TensorArray(ys.dtype, size=steps, element_shape=ys.shape[1:])

    def body(i, g, grad_a):
        t = steps - 1 - i
        da = g * slope[t]
        back = 0.0 if kind == "none" else residuals_lib.apply_linear_form_transpose(form, g)
        g_new = tf.ensure_shape(back + tf.matmul(da, w_t) + grad_hs[t], g.shape)
        return i + 1, g_new, grad_a.write(t, da)

    _, g0, grad_a = tf.while_loop(
        lambda i, *_: i < steps, body, (tf.constant(0), grad_hs[steps], grad_a),
        maximum_iterations=steps, parallel_iterations=32,
    )
    grad_a = grad_a.stack()
    units = tf.shape(W)[0]
    grad_w = tf.matmul(tf.reshape(hs[:-1], (-1, units)), tf.reshape(grad_a, (-1, units)),
                       transpose_a=True)
    return grad_a, g0, grad_w


def _custom(key):
    """The compiled custom-gradient recurrence for one configuration."""
    if key not in _COMPILED:
        coupling, activation, kind, go_backwards = key
        derivative = _activations.derivative(activation)
        forward = tf.function(
            lambda xs, h0, W, *params: _forward(xs, h0, W, params, coupling, activation, kind,
                                                None, True),
            jit_compile=True, reduce_retracing=True,
        )
        backward = tf.function(
            lambda grad_hs, hs, ys, W, *params: _backward(grad_hs, hs, ys, W, params, coupling,
                                                          derivative, kind),
            jit_compile=True, reduce_retracing=True,
        )

        def run(xp, h0, W, *params):
            @tf.custom_gradient
            def fused(xp, h0, W):
                hs, ys = forward(_time_major(xp, go_backwards), h0, W, *params)

                def grad(grad_hs):
                    grad_a, g0, grad_w = backward(grad_hs, hs, ys, W, *params)
                    grad_xp = tf.transpose(grad_a, (1, 0, 2))
                    if go_backwards:
                        grad_xp = tf.reverse(grad_xp, axis=[1])
                    return grad_xp, g0, grad_w

                return hs, grad

            return fused(xp, h0, W)

        # Graph mode around the custom gradient, so TensorFlow never traces a
        # differentiable variant of the compiled loops (whose TensorLists
        # cannot leave XLA).
        _COMPILED[key] = tf.function(run, reduce_retracing=True)
    return _COMPILED[key]


def wcrnn_scan(xp, h0, recurrent_kernel, coupling, activation, residual,
               go_backwards=False, return_sequences=True, residual_trainable=False):
    if _custom_supported(activation, residual, residual_trainable):
        if residual is None:
            kind, params = "none", ()
        else:
            form = residual.linear_form(xp.dtype)
            kind, params = form[0], tuple(tf.stop_gradient(p) for p in form[1:])
        run = _custom((float(coupling), activation, kind, bool(go_backwards)))
        # Plain tensors in: tf.custom_gradient must not see variable reads.
        hs = run(tf.identity(xp), tf.identity(h0), tf.identity(recurrent_kernel), *params)
    else:
        phi, base = (None, residual)
        if residual is not None and not residual.linear:  # rho(h) = base(phi(h))
            phi, base = residual.activation, residual.base
        kind = "none" if base is None else None
        form = ("none",) if base is None else base.linear_form(xp.dtype)
        hs, _ = _forward(_time_major(xp, go_backwards), h0, recurrent_kernel, form[1:],
                         float(coupling), activation, kind or form[0], phi, False)
    h_last = hs[-1]
    outputs = tf.transpose(hs[1:], (1, 0, 2)) if return_sequences else None
    return h_last, outputs, h_last
