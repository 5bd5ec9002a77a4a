"""Lyapunov-loop pieces for JAX: jax.linearize + vmap for the tangents, one
jitted lax.scan for the loop, batched QR (CholeskyQR2 or Householder)."""

import contextlib

import jax
import jax.numpy as jnp
import keras
import numpy as np


def tangent_map(f, s, Q):
    y, lin = jax.linearize(f, s)
    return y, jax.vmap(lin, in_axes=-1, out_axes=-1)(Q)


def _sign_fixed(Q, d):
    sign = jnp.where(d < 0, -1.0, 1.0).astype(Q.dtype)
    return Q * sign[..., None, :], jnp.log(jnp.abs(d))


def _householder(Z):
    Q, R = jnp.linalg.qr(Z)
    return _sign_fixed(Q, jnp.diagonal(R, axis1=-2, axis2=-1))


def _cholesky_pass(Z):
    G = jnp.matmul(jnp.swapaxes(Z, -1, -2), Z)
    L = jnp.linalg.cholesky(G)
    # Q L^T = Z, i.e. Q = Z R^-1 with R = L^T.
    Q = jax.lax.linalg.triangular_solve(L, Z, left_side=False, lower=True, transpose_a=True)
    return Q, jnp.diagonal(L, axis1=-2, axis2=-1)


def _cholesky_qr2(Z):
    tol = 8.0 * float(np.sqrt(np.finfo(Z.dtype).eps))
    norms = jnp.sqrt(jnp.sum(jnp.square(Z), axis=-2))
    norms = jnp.where(norms > 0, norms, 1.0)
    Q1, d1 = _cholesky_pass(Z / norms[..., None, :])
    Q2, d2 = _cholesky_pass(Q1)
    log_d = jnp.log(d1) + jnp.log(d2) + jnp.log(norms)
    ok = jnp.all(jnp.isfinite(log_d)) & jnp.all(jnp.isfinite(Q2)) & (jnp.min(d1) >= tol)
    return jax.lax.cond(ok, lambda z: (Q2, log_d), _householder, Z)


def qr(Z, method):
    if method == "householder":
        return _householder(Z)
    return _cholesky_qr2(Z)


def default_qr_method(dtype, device_kind):
    # Batched LAPACK QR of small matrices is fast on CPUs and slow on GPUs
    # (pytorch#143281, jax#8542), where CholeskyQR2 runs as matmuls.
    if dtype == "float64" or device_kind != "gpu":
        return "householder"
    return "cholesky"


def make_runner(body, variables, rare_qr=False):
    variables = list(variables)

    def chunk(values, carry, xs, t0, warmup, steps):
        mapping = list(zip(variables, values))
        with keras.StatelessScope(state_mapping=mapping):
            ts = t0 + 1 + jnp.arange(xs.shape[0], dtype="int32")

            def step(c, inp):
                x, t = inp
                return body(c, x, t, warmup, steps), None

            carry, _ = jax.lax.scan(step, carry, (xs, ts))
        return carry

    compiled = jax.jit(chunk)

    def run(carry, xs, t0, warmup, steps):
        values = [v.value for v in variables]
        scalars = [jnp.asarray(v, dtype="int32") for v in (t0, warmup, steps)]
        return compiled(values, carry, xs, *scalars)

    return run


@contextlib.contextmanager
def compute_scope(dtype):
    """float64 needs JAX's x64 mode: enabled for the computation only.

    JAX's CPU linear algebra (QR, Cholesky) calls SciPy's OpenBLAS once per
    matrix of the batch; multi-threaded OpenBLAS on matrices this small is
    slower, and on a busy machine (threads spinning at barriers) up to 100x
    slower, than one thread, so OpenBLAS runs single-threaded during the
    computation (when threadpoolctl is installed). XLA's own thread pool
    (matrix products) is not affected.
    """
    with contextlib.ExitStack() as stack:
        if dtype == "float64":
            stack.enter_context(jax.enable_x64(True))
        if jax.default_backend() == "cpu":
            try:
                from threadpoolctl import threadpool_limits
            except ImportError:
                pass
            else:
                stack.enter_context(threadpool_limits(limits=1, user_api="blas"))
        yield
