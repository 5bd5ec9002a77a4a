"""Backend-specific pieces of the Lyapunov-spectrum loop, one module per
backend, each exposing the same functions:

    tangent_map(f, s, Q) -> (f(s), Z)
        Forward-mode autodiff of a row-wise state map f: (batch, S) ->
        (batch, S) on the k columns of Q (batch, S, k) at once:
        Z[b, :, j] = J_f(s_b) Q[b, :, j]. One linearisation, vectorised
        over the columns (jax.linearize + vmap, torch.func.jvp + vmap,
        tf.autodiff.ForwardAccumulator inside tf.vectorized_map); never a
        loop over columns.

    qr(Z, method) -> (Q, log_diag_R)
        Batched thin QR of Z (batch, S, k) with the signs fixed so that
        diag(R) > 0; returns Q and log diag(R) (batch, k). `method` is
        "householder" (the backend's LAPACK-style QR) or "cholesky"
        (CholeskyQR2 on column-equilibrated Z, falling back to Householder
        for the step when the Cholesky factorisation breaks down or Z is
        too ill-conditioned for it).

    make_runner(body, variables, rare_qr) -> run(carry, xs, t0, warmup, steps)
        Compiles `body(carry, x_t, t, warmup, steps) -> carry` for each
        step of the leading (time) axis of xs, t running t0+1 .. t0+len(xs):
        one jitted lax.scan on JAX (the variables' values are arguments, so
        new weights do not recompile), one tf.function while-loop on
        TensorFlow (XLA-compiled when `rare_qr` says QRs will be rare), a
        no-grad Python loop on PyTorch (where t and the step counters of the
        carry are Python integers).

    default_qr_method(dtype, device_kind) -> "householder" | "cholesky"

    compute_scope(dtype) -> context manager under which the whole computation
        runs: JAX's x64 mode for float64, and on CPU single-threaded LAPACK
        (JAX: SciPy's OpenBLAS through threadpoolctl) or intra-op threads
        (torch), which a batch of small matrices does not profit from.

Everything else in `keras_residual.dynamics.lyapunov` uses `keras.ops`.
"""

import importlib

import keras


def get_backend():
    """The module of the current Keras backend."""
    name = keras.backend.backend()
    if name not in ("jax", "torch", "tensorflow"):
        raise RuntimeError(
            f"Lyapunov spectra need the jax, torch or tensorflow backend; the "
            f"current Keras backend is {name!r}."
        )
    return importlib.import_module(f"keras_residual.dynamics._lyapunov_backends.{name}")
