"""Fused WCRNN recurrence for PyTorch: a hand-written loop with an explicit
backward pass (`torch.autograd.Function`).

Autograd through a Python loop records ~10 nodes per step and replays them
one by one; here the forward writes every state into one preallocated buffer
and the backward runs its own loop of 3-5 kernels per step, then forms the
recurrent-kernel gradient as one (T*B, N)^T (T*B, N) matmul.

Forward, per step:   a = xp_t + h @ W;  y = sigma(a);  h' = rho(h) + c y
Backward, per step:  g += dL/dh_t;  da = g * c sigma'(a);
                     g = g J_rho(h) + da @ W^T

(the equations of `keras_residual.layers._wcrnn_step`, written here with
torch's in-place and `out=` operations: autograd is not running inside). The
residual enters as its form (`residual.form(dtype)`): `form.apply` and
`form.apply_transpose`.
"""

import torch

from keras_residual import _activations
from keras_residual import residuals as residuals_lib
from keras_residual.layers import _wcrnn_kernels

# The activations applied in place to a pre-activation buffer (each has a
# derivative in `_activations`, evaluated from y = sigma(a)).
_IN_PLACE = {
    "tanh": torch.Tensor.tanh_,
    "sigmoid": torch.Tensor.sigmoid_,
    "relu": torch.Tensor.relu_,
    "linear": lambda a: a,
}


# Keras' loop is eager and pays ~20-40 us per op: a rotation steps as one
# h @ R^T product instead of five ops (a training step at T = 100: 47 ms
# against 61, SimpleRNN 36; see `_wcrnn_kernels`).
CELL_DENSE_FORMS = True


def supports(activation, residual, residual_trainable):
    """Fixed residuals and activations applied in place (a trainable residual
    takes the generic path, whose autodiff trains its parameters)."""
    if _activations.name_of(activation) not in _IN_PLACE:
        return False
    return residual is None or not residual_trainable


def _recur(ys, hs, W, coupling, activate, form):
    """The forward loop, in place: `ys[t]`, holding xp_t, becomes y_t, and
    the state after step t goes to `hs[t + 1]` (`hs[0]` is h0). `hs` may
    also be a tuple `(h0, a, b)` of (batch, units) tensors: the states then
    go to whichever of `a` and `b` does not hold the previous one
    (inference that returns the last state only; `h0` is only read, and may
    be `a` or `b` when a chunked loop goes on). Returns the last state."""
    spares = hs[1:] if isinstance(hs, tuple) else None
    prev = hs[0]
    for t in range(ys.shape[0]):
        if spares is None:
            out = hs[t + 1]
        else:
            out = spares[1] if prev is spares[0] else spares[0]
        y = ys[t].addmm_(prev, W)
        activate(y)
        if form.is_zero:
            torch.mul(y, coupling, out=out)
        else:
            torch.add(form.apply(prev), y, alpha=coupling, out=out)
        prev = out
    return prev


# Inference returning the last state projects this many steps at a time:
# memory O(chunk) instead of O(T), and one buffer size reused call after
# call (a (T, B, N) buffer allocated and freed per call grew the process by
# 50-150 MB through the allocator's fragmentation at T = 784).
_CHUNK = 128


def _infer(sequences, kernel, bias, h0, W, coupling, activation_name, form, go_backwards,
           return_sequences):
    """The forward pass where no gradient is wanted (`predict`, `no_grad`):
    no autograd record, the projection formed time-major and overwritten in
    place with the activations. With `return_sequences` one (T, B, N)
    projection and the (T + 1, B, N) states; else the projection `_CHUNK`
    steps at a time and the states in two (B, N) buffers."""
    x = sequences.transpose(0, 1)
    if go_backwards:
        x = torch.flip(x, dims=(0,))
    activate = _IN_PLACE[activation_name]

    def project(start, stop):  # a fresh tensor: ours to overwrite
        ys = torch.matmul(x[start:stop], kernel)
        return ys if bias is None else ys.add_(bias)

    steps = x.shape[0]
    if return_sequences:
        ys = project(0, steps)
        hs = torch.empty((steps + 1,) + tuple(h0.shape), dtype=ys.dtype, device=ys.device)
        hs[0] = h0
        h = _recur(ys, hs, W, coupling, activate, form)
        return h, hs[1:].transpose(0, 1), h
    h = h0
    spares = (torch.empty_like(h0), torch.empty_like(h0))
    for start in range(0, steps, _CHUNK):
        h = _recur(project(start, start + _CHUNK), (h,) + spares, W, coupling, activate, form)
    return h, None, h


class _WCRNNFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, xp, h0, W, coupling, activation_name, form, return_sequences, *tensors):
        activate = _IN_PLACE[activation_name]
        form = form.replace(tensors)
        # A time-major copy of the projection, overwritten step by step with
        # the activations (xp_t is not needed after step t): one (T, B, N)
        # buffer for both.
        # (A copy always: `contiguous()` would alias xp when B or T is 1.)
        batch, steps, units = xp.shape
        ys = torch.empty((steps, batch, units), dtype=xp.dtype, device=xp.device)
        ys.copy_(xp.transpose(0, 1))
        hs = torch.empty((steps + 1, batch, units), dtype=xp.dtype, device=xp.device)
        hs[0] = h0
        _recur(ys, hs, W, coupling, activate, form)
        ctx.hs, ctx.ys, ctx.W, ctx.form = hs, ys, W, form
        ctx.coupling, ctx.activation_name = coupling, activation_name
        ctx.return_sequences = return_sequences
        return hs[1:] if return_sequences else hs[steps].clone()

    @staticmethod
    def backward(ctx, grad_out):
        hs, ys, W, form = ctx.hs, ctx.ys, ctx.W, ctx.form
        derivative = _activations.DERIVATIVES[ctx.activation_name]
        steps, batch, units = ys.shape
        # The activations' buffer becomes the slopes c * sigma'(a_t) (in
        # chunks of steps, so the temporaries stay small), then each da_t
        # overwrites slope_t: one (T, B, N) buffer for all three.
        ctx.ys = None
        for start in range(0, steps, 64):
            chunk = ys[start:start + 64]
            chunk.copy_(derivative(chunk, chunk)).mul_(ctx.coupling)
        grad_a = ys
        w_t = W.t()
        sequence = ctx.return_sequences
        g = (grad_out[steps - 1] if sequence else grad_out).clone()
        for t in range(steps - 1, -1, -1):
            da = grad_a[t].mul_(g)
            if form.is_zero:
                g = da @ w_t
            else:
                g = torch.addmm(form.apply_transpose(g, hs[t]), da, w_t)
            if sequence and t > 0:
                g.add_(grad_out[t - 1])
        grad_xp = grad_a.transpose(0, 1) if ctx.needs_input_grad[0] else None
        grad_W = None
        if ctx.needs_input_grad[2]:
            grad_W = hs[:-1].reshape(-1, units).t() @ grad_a.reshape(-1, units)
        ctx.hs = ctx.ys = ctx.W = ctx.form = None
        return (grad_xp, g, grad_W, None, None, None, None) + (None,) * len(form.tensors)


def wcrnn_scan(sequences, kernel, bias, h0, recurrent_kernel, coupling, activation, residual,
               go_backwards=False, return_sequences=True, residual_trainable=False):
    dtype = recurrent_kernel.dtype
    form = residuals_lib.form_of(residual, dtype)
    if form.prefers_dense:
        # One matmul per step and direction instead of the form's several
        # elementwise ops: this loop pays ~20-40 us of dispatch per op.
        form = form.as_dense(recurrent_kernel.shape[-1], dtype)
    tensors = tuple(t.detach() for t in form.tensors)
    leaves = (sequences, kernel, bias, h0, recurrent_kernel)
    if not (torch.is_grad_enabled() and any(
            t is not None and t.requires_grad for t in leaves)):
        with torch.no_grad():
            return _infer(sequences, kernel, bias, h0, recurrent_kernel, float(coupling),
                          _activations.name_of(activation), form, go_backwards,
                          bool(return_sequences))
    xp = _wcrnn_kernels.project(sequences, kernel, bias)
    if go_backwards:
        xp = torch.flip(xp, dims=(1,))
    out = _WCRNNFunction.apply(
        xp, h0, recurrent_kernel, float(coupling), _activations.name_of(activation), form,
        bool(return_sequences), *tensors
    )
    if return_sequences:
        h_last = out[-1]
        return h_last, out.transpose(0, 1), h_last
    return out, None, out
