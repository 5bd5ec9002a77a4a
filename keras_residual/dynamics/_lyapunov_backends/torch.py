"""Lyapunov-loop pieces for PyTorch: torch.func.jvp + vmap for the tangents,
a no-grad Python loop, batched QR (CholeskyQR2 or Householder)."""

import contextlib

import numpy as np
import torch


def tangent_map(f, s, Q):
    def column(v):
        return torch.func.jvp(f, (s,), (v,))

    return torch.func.vmap(column, in_dims=-1, out_dims=(None, -1))(Q)


def _sign_fixed(Q, d):
    sign = torch.where(d < 0, -1.0, 1.0).to(Q.dtype)
    return Q * sign[..., None, :], torch.log(torch.abs(d))


def _householder(Z):
    Q, R = torch.linalg.qr(Z)
    return _sign_fixed(Q, torch.diagonal(R, dim1=-2, dim2=-1))


def _cholesky_pass(Z):
    G = torch.matmul(Z.mT, Z)
    L, info = torch.linalg.cholesky_ex(G)
    Q = torch.linalg.solve_triangular(L.mT, Z, upper=True, left=False)
    return Q, torch.diagonal(L, dim1=-2, dim2=-1), info


def _cholesky_qr2(Z):
    tol = 8.0 * float(np.sqrt(torch.finfo(Z.dtype).eps))
    norms = torch.linalg.vector_norm(Z, dim=-2)
    norms = torch.where(norms > 0, norms, torch.ones_like(norms))
    Q1, d1, info1 = _cholesky_pass(Z / norms[..., None, :])
    Q2, d2, info2 = _cholesky_pass(Q1)
    log_d = torch.log(d1) + torch.log(d2) + torch.log(norms)
    ok = (
        (info1 == 0).all()
        & (info2 == 0).all()
        & torch.isfinite(log_d).all()
        & torch.isfinite(Q2).all()
        & (d1.min() >= tol)
    )
    if bool(ok):
        return Q2, log_d
    return _householder(Z)


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
    def run(carry, xs, t0, warmup, steps):
        with torch.no_grad():
            # The step counters as Python integers: the QR schedule is plain
            # Python control flow, with no tensor op or device sync per step.
            *tensors, last_qr, next_qr, num_qr = carry
            carry = (*tensors, int(last_qr), int(next_qr), int(num_qr))
            for i in range(xs.shape[0]):
                carry = body(carry, xs[i], int(t0) + i + 1, int(warmup), int(steps))
            *tensors, last_qr, next_qr, num_qr = carry
            device = tensors[0].device
            counters = [torch.tensor(c, dtype=torch.int32, device=device)
                        for c in (last_qr, next_qr, num_qr)]
        return (*tensors, *counters)

    return run


@contextlib.contextmanager
def compute_scope(dtype):
    """On CPU, torch runs single-threaded during the computation.

    The per-step work is a batch of small products and QR factorisations;
    intra-op threads add a barrier per operation, and on a machine with other
    work (threads spinning while one is descheduled) they made each step up to
    40x slower (benchmarks/lyapunov_speed.py). The previous setting is
    restored afterwards.
    """
    if torch.cuda.is_available():  # Keras' torch backend then computes on the GPU
        yield
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
