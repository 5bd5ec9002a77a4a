"""What the Lyapunov engine needs that differs by backend, one module each,
each exposing the same functions (everything else is `keras.ops`):

    tangent_map(f, s, Q) -> (f(s), Z)
        Forward-mode autodiff of a row-wise state map f: (batch, S) ->
        (batch, S) on the k columns of Q (batch, S, k) at once:
        Z[b, :, j] = J_f(s_b) Q[b, :, j]. One linearisation, vectorised
        over the columns (jax.linearize + vmap, torch.func.jvp + vmap,
        tf.autodiff.ForwardAccumulator inside tf.vectorized_map).

    make_runner(body, variables, rare_qr, counters) -> run(carry, xs, t0, warmup, steps)
        Compiles `body(carry, x_t, t, warmup, steps) -> carry` for each step
        of the leading (time) axis of xs, t running t0+1 .. t0+len(xs): one
        jitted lax.scan on JAX (the variables' values are arguments, so new
        weights do not recompile), one tf.function while-loop on TensorFlow
        (XLA-compiled when `rare_qr` says QRs will be rare), a no-grad Python
        loop on PyTorch, where t and the carry's fields named in `counters`
        are Python integers (the schedule is then Python control flow).

    scan(f, carry, xs) -> (carry, ys)
        `keras.ops.scan`, compiled where the backend compiles (a jitted
        lax.scan on JAX, a tf.function on TensorFlow: Keras' scan runs op
        by op in TensorFlow's eager mode, ~100x slower), for the loops that
        keep every step's output (covariant vectors).

    safe_cholesky(G) -> L
        The lower Cholesky factor, NaN where G is not positive definite
        (`keras.ops.linalg.cholesky` raises instead, and cannot in a
        compiled loop); CholeskyQR2 (`qr.py`) tests for it.

    householder(Z) -> (Q, log|diag R|)   [torch only]
        The signed Householder QR written with torch calls: `qr.py`'s
        `keras.ops` version costs ~25 us more per QR in torch's eager loop
        (measured: 0.025 against 0.048 ms for 8 x 16 x 4), as much as the
        rest of a small cell's step; JAX and TensorFlow trace the `keras.ops`
        version, at no cost.

    default_qr_method(dtype, device_kind) -> "householder" | "cholesky"

    compute_scope(dtype) -> context manager under which the computation
        runs: JAX's x64 mode for float64. No backend changes the user's
        thread settings.
"""

import importlib

import keras


_MODULES = {}


def get_backend():
    """The module of the current Keras backend.

    Imported once per backend and then a dictionary lookup: the loops call
    this while TensorFlow traces them, and AutoGraph warns about
    `importlib`'s import machinery ("could not transform _gcd_import") when
    a traced function reaches it.
    """
    name = keras.backend.backend()
    module = _MODULES.get(name)
    if module is None:
        if name not in ("jax", "torch", "tensorflow"):
            raise RuntimeError(
                f"Lyapunov exponents need the jax, torch or tensorflow backend; the "
                f"current Keras backend is {name!r}."
            )
        module = _MODULES[name] = importlib.import_module(
            f"keras_residual.dynamics.lyapunov._backends.{name}")
    return module
