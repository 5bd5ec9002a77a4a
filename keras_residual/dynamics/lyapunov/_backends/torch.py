"""PyTorch: torch.func.jvp + vmap for the tangents, a no-grad Python loop."""

import contextlib

import torch


def tangent_map(f, s, Q):
    def column(v):
        return torch.func.jvp(f, (s,), (v,))

    return torch.func.vmap(column, in_dims=-1, out_dims=(None, -1))(Q)


def scan(f, carry, xs):
    import keras

    with torch.no_grad():
        return keras.ops.scan(f, carry, xs)


def safe_cholesky(G):
    L, info = torch.linalg.cholesky_ex(G)
    failed = (info != 0)[..., None, None]
    return torch.where(failed, torch.full_like(L, float("nan")), L)


def householder(Z):
    """The signed Householder QR (see `_backends/__init__.py` for why torch
    has its own): `(Q, log|diag R|)` with diag(R) > 0."""
    Q, R = torch.linalg.qr(Z)
    d = torch.diagonal(R, dim1=-2, dim2=-1)
    return torch.where((d < 0)[..., None, :], -Q, Q), torch.log(torch.abs(d))


def default_qr_method(dtype, device_kind):
    # Batched LAPACK QR of small matrices is fast on CPUs and slow on GPUs
    # (pytorch#143281), where CholeskyQR2 runs as matmuls.
    if dtype == "float64" or device_kind != "gpu":
        return "householder"
    return "cholesky"


def make_runner(body, variables, rare_qr=False, counters=()):
    def run(carry, xs, t0, warmup, steps):
        with torch.no_grad():
            # The counters as Python integers: the QR schedule is plain
            # Python control flow, with no tensor op or device sync per step.
            carry = carry._replace(**{name: int(getattr(carry, name)) for name in counters})
            for i in range(xs.shape[0]):
                carry = body(carry, xs[i], int(t0) + i + 1, int(warmup), int(steps))
            device = carry[0].device
            return carry._replace(**{
                name: torch.tensor(getattr(carry, name), dtype=torch.int32, device=device)
                for name in counters
            })

    return run


def compute_scope(dtype):
    return contextlib.nullcontext()
