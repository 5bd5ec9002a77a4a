"""TensorFlow: ForwardAccumulator inside tf.vectorized_map for the tangents,
one tf.function while-loop."""

import contextlib

import tensorflow as tf

from keras_residual._keras_compat import quiet_tracing


def tangent_map(f, s, Q):
    def column(v):
        with tf.autodiff.ForwardAccumulator(s, v) as acc:
            y = f(s)
        return acc.jvp(y, unconnected_gradients=tf.UnconnectedGradients.ZERO)

    Z = tf.vectorized_map(column, tf.transpose(Q, (2, 0, 1)))
    return f(s), tf.transpose(Z, (1, 2, 0))


def scan(f, carry, xs):
    import keras

    return tf.function(lambda c, x: keras.ops.scan(f, c, x))(carry, xs)


def safe_cholesky(G):
    # TensorFlow fills the factor of a matrix that is not positive definite
    # with NaN instead of raising.
    return tf.linalg.cholesky(G)


def default_qr_method(dtype, device_kind):
    # TensorFlow logs a warning for every Cholesky factorisation that fails
    # (ill-conditioned steps, e.g. of an LSTM) before the fallback catches it;
    # Householder everywhere keeps the logs clean.
    return "householder"


def make_runner(body, variables, rare_qr=False, counters=()):
    def loop(carry, xs, t0, warmup, steps):
        n = tf.shape(xs)[0]

        def loop_body(i, c):
            return i + 1, body(c, xs[i], t0 + i + 1, warmup, steps)

        _, carry = tf.while_loop(lambda i, c: i < n, loop_body, (tf.constant(0), carry))
        return carry

    # In graph mode every op of a step costs executor time (about 0.5 ms a
    # step for a WCRNN); XLA fuses the step, but its QR is about twice as slow
    # as LAPACK's. XLA therefore compiles loops whose QRs are rare (and falls
    # back to graph mode for cells XLA cannot compile). Each cell and
    # configuration gets its own loop (cached by the caller), so first calls
    # trace by design: no "frequent retracing" warning.
    compiled = {
        "graph": quiet_tracing(tf.function(loop, reduce_retracing=True)),
        "xla": quiet_tracing(tf.function(loop, reduce_retracing=True, jit_compile=True)),
    }
    mode = ["xla" if rare_qr else "graph"]

    def run(carry, xs, t0, warmup, steps):
        scalars = [tf.constant(v, dtype="int32") for v in (t0, warmup, steps)]
        if mode[0] == "xla":
            try:
                return compiled["xla"](carry, xs, *scalars)
            except (tf.errors.InvalidArgumentError, tf.errors.UnimplementedError,
                    tf.errors.InternalError, NotImplementedError):
                mode[0] = "graph"
        return compiled["graph"](carry, xs, *scalars)

    return run


def compute_scope(dtype):
    return contextlib.nullcontext()
