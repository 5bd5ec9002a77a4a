"""JAX: jax.linearize + vmap for the tangents, one jitted lax.scan for the loop."""

import contextlib

import jax
import jax.numpy as jnp
import keras


def tangent_map(f, s, Q):
    y, lin = jax.linearize(f, s)
    return y, jax.vmap(lin, in_axes=-1, out_axes=-1)(Q)


def scan(f, carry, xs):
    return jax.jit(lambda c, x: jax.lax.scan(f, c, x))(carry, xs)


def safe_cholesky(G):
    return jnp.linalg.cholesky(G)  # NaN where G is not positive definite


def default_qr_method(dtype, device_kind):
    # Batched LAPACK QR of small matrices is fast on CPUs and slow on GPUs
    # (jax#8542), where CholeskyQR2 runs as matmuls.
    if dtype == "float64" or device_kind != "gpu":
        return "householder"
    return "cholesky"


def make_runner(body, variables, rare_qr=False, counters=()):
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


def compute_scope(dtype):
    """float64 needs JAX's x64 mode: enabled for the computation only."""
    if dtype == "float64":
        return jax.enable_x64(True)
    return contextlib.nullcontext()
