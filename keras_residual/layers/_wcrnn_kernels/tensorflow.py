"""Fused WCRNN recurrence for TensorFlow: one `tf.while_loop` over a
TensorArray, autodiff through it (XLA-compatible under `jit_compile`)."""

import tensorflow as tf


def supports(activation, residual, residual_trainable):
    return True


def wcrnn_scan(xp, h0, recurrent_kernel, coupling, activation, residual,
               go_backwards=False, return_sequences=True):
    rho = None if residual is None else residual.prepare(xp.dtype)
    xs = tf.transpose(xp, (1, 0, 2))
    if go_backwards:
        xs = tf.reverse(xs, axis=[0])
    steps = tf.shape(xs)[0]
    inputs = tf.TensorArray(xs.dtype, size=steps, element_shape=h0.shape).unstack(xs)
    outputs = tf.TensorArray(xs.dtype, size=steps if return_sequences else 0,
                             element_shape=h0.shape)

    def body(t, h, out):
        y = coupling * activation(inputs.read(t) + tf.matmul(h, recurrent_kernel))
        h_new = y if rho is None else rho(h) + y
        if return_sequences:
            out = out.write(t, h_new)
        return t + 1, h_new, out

    _, h_last, outputs = tf.while_loop(
        lambda t, h, out: t < steps,
        body,
        (tf.constant(0), h0, outputs),
        maximum_iterations=steps,
    )
    sequence = tf.transpose(outputs.stack(), (1, 0, 2)) if return_sequences else None
    return h_last, sequence, h_last
