"""Lyapunov-loop pieces for TensorFlow: ForwardAccumulator inside
tf.vectorized_map for the tangents, one tf.function while-loop, batched QR
(Householder; CholeskyQR2 with a guarded fallback)."""

import contextlib

import numpy as np
import tensorflow as tf

from keras_residual._keras_compat import quiet_tracing


def tangent_map(f, s, Q):
    def column(v):
        with tf.autodiff.ForwardAccumulator(s, v) as acc:
            y = f(s)
        return acc.jvp(y, unconnected_gradients=tf.UnconnectedGradients.ZERO)

    Z = tf.vectorized_map(column, tf.transpose(Q, (2, 0, 1)))
    return f(s), tf.transpose(Z, (1, 2, 0))


def _sign_fixed(Q, d):
    sign = tf.where(d < 0, tf.constant(-1.0, Q.dtype), tf.constant(1.0, Q.dtype))
    return Q * sign[..., None, :], tf.math.log(tf.abs(d))


def _householder(Z):
    Q, R = tf.linalg.qr(Z)
    return _sign_fixed(Q, tf.linalg.diag_part(R))


def _cholesky_pass(Z):
    G = tf.matmul(Z, Z, transpose_a=True)
    # A matrix that is not positive definite gives NaNs (TensorFlow >= 2.x
    # fills the factor with NaN instead of raising), caught below.
    L = tf.linalg.cholesky(G)
    Q = tf.linalg.adjoint(tf.linalg.triangular_solve(L, tf.linalg.adjoint(Z), lower=True))
    return Q, tf.linalg.diag_part(L)


def _cholesky_qr2(Z):
    tol = 8.0 * float(np.sqrt(np.finfo(Z.dtype.as_numpy_dtype).eps))
    norms = tf.norm(Z, axis=-2)
    norms = tf.where(norms > 0, norms, tf.ones_like(norms))
    Q1, d1 = _cholesky_pass(Z / norms[..., None, :])
    Q2, d2 = _cholesky_pass(Q1)
    log_d = tf.math.log(d1) + tf.math.log(d2) + tf.math.log(norms)
    ok = (
        tf.reduce_all(tf.math.is_finite(log_d))
        & tf.reduce_all(tf.math.is_finite(Q2))
        & (tf.reduce_min(d1) >= tol)
    )
    return tf.cond(ok, lambda: (Q2, log_d), lambda: _householder(Z))


def qr(Z, method):
    if method == "householder":
        return _householder(Z)
    return _cholesky_qr2(Z)


def default_qr_method(dtype, device_kind):
    # TensorFlow logs a warning for every Cholesky factorisation that fails
    # (ill-conditioned steps, e.g. of an LSTM) before the fallback catches it;
    # Householder everywhere keeps the logs clean. Untested on GPUs here.
    return "householder"


def make_runner(body, variables, rare_qr=False):
    def loop(carry, xs, t0, warmup, steps):
        n = tf.shape(xs)[0]

        def loop_body(i, c):
            return i + 1, body(c, xs[i], t0 + i + 1, warmup, steps)

        _, carry = tf.while_loop(lambda i, c: i < n, loop_body, (tf.constant(0), carry))
        return carry

    # In graph mode every op of a step costs executor time (about 0.5 ms a
    # step for a WCRNN); XLA fuses the step, but its QR is about twice as slow
    # as LAPACK's. XLA therefore compiles loops whose QRs are rare (and falls
    # back to graph mode for cells XLA cannot compile).
    compiled = {
        "graph": tf.function(loop, reduce_retracing=True),
        "xla": tf.function(loop, reduce_retracing=True, jit_compile=True),
    }
    # Each cell and configuration gets its own compiled loop (cached by the
    # caller), so first calls trace by design: no "frequent retracing" warning.
    for function in compiled.values():
        quiet_tracing(function)
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
