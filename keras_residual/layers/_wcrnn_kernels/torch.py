"""Fused WCRNN recurrence for PyTorch: a hand-written loop with an explicit
backward pass (`torch.autograd.Function`).

Autograd through a Python loop records ~10 nodes per step and replays them
one by one; here the forward writes every state into one preallocated buffer
and the backward runs its own loop of 3-5 kernels per step, then forms the
recurrent-kernel gradient as one (T*B, N)^T (T*B, N) matmul.

Forward, per step:   a = xp_t + h @ W;  y = sigma(a);  h' = rho(h) + c y
Backward, per step:  g += dL/dh_t;  da = g * c sigma'(a);
                     g = rho^T(g) + da @ W^T
"""

import torch

# name -> (in-place activation of a pre-activation buffer, derivative from y)
_ACTIVATIONS = {
    "tanh": (torch.Tensor.tanh_, lambda y: 1.0 - y * y),
    "sigmoid": (torch.Tensor.sigmoid_, lambda y: y * (1.0 - y)),
    "relu": (torch.Tensor.relu_, lambda y: (y > 0).to(y.dtype)),
    "linear": (lambda a: a, lambda y: torch.ones_like(y)),
}


def _activation_name(activation):
    from keras_residual import _activations

    return _activations.name_of(activation)


def supports(activation, residual, residual_trainable):
    """Linear, fixed residuals and activations with a known derivative."""
    if _activation_name(activation) not in _ACTIVATIONS:
        return False
    if residual is None:
        return True
    return residual.linear and not residual_trainable


def _pair_permutation(n, device):
    idx = torch.arange(n, device=device)
    return idx ^ 1


def _step_into(out, kind, params, h, y, coupling, perm):
    """out = rho(h) + coupling * y, written into `out` (a slice of the state buffer)."""
    if kind == "none":
        torch.mul(y, coupling, out=out)
    elif kind == "identity":
        torch.add(h, y, alpha=coupling, out=out)
    elif kind == "dense":
        torch.addmm(y, h, params[0], beta=coupling, out=out)
    else:
        torch.mul(h, params[0], out=out)
        if kind == "rotation":
            out.addcmul_(h[:, perm], params[1])
        out.add_(y, alpha=coupling)


def _rho_transpose(kind, params, g, perm):
    """g @ J_rho, i.e. the vector-Jacobian product of rho."""
    if kind == "none":
        return None
    if kind == "identity":
        return g
    if kind == "diagonal":
        return g * params[0]
    if kind == "rotation":
        return g * params[0] + (g * params[1])[:, perm]
    if kind == "dense":
        return g @ params[0].t()
    raise ValueError(kind)


class _WCRNNFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, xp, h0, W, coupling, activation_name, kind, return_sequences, *params):
        activate, _ = _ACTIVATIONS[activation_name]
        xs = xp.transpose(0, 1).contiguous()
        steps, batch, units = xs.shape
        hs = torch.empty((steps + 1, batch, units), dtype=xp.dtype, device=xp.device)
        ys = torch.empty((steps, batch, units), dtype=xp.dtype, device=xp.device)
        hs[0] = h0
        perm = _pair_permutation(units, xp.device) if kind == "rotation" else None
        for t in range(steps):
            y = torch.addmm(xs[t], hs[t], W, out=ys[t])
            activate(y)
            _step_into(hs[t + 1], kind, params, hs[t], y, coupling, perm)
        ctx.hs, ctx.ys, ctx.W, ctx.params = hs, ys, W, params
        ctx.coupling, ctx.activation_name, ctx.kind = coupling, activation_name, kind
        ctx.return_sequences = return_sequences
        return hs[1:] if return_sequences else hs[steps].clone()

    @staticmethod
    def backward(ctx, grad_out):
        hs, ys, W, params = ctx.hs, ctx.ys, ctx.W, ctx.params
        kind = ctx.kind
        _, derivative = _ACTIVATIONS[ctx.activation_name]
        steps, batch, units = ys.shape
        perm = _pair_permutation(units, ys.device) if kind == "rotation" else None
        slope = derivative(ys).mul_(ctx.coupling)
        grad_a = torch.empty_like(ys)
        w_t = W.t()
        sequence = ctx.return_sequences
        g = (grad_out[steps - 1] if sequence else grad_out).clone()
        for t in range(steps - 1, -1, -1):
            da = torch.mul(g, slope[t], out=grad_a[t])
            back = _rho_transpose(kind, params, g, perm)
            g = da @ w_t if back is None else torch.addmm(back, da, w_t)
            if sequence and t > 0:
                g.add_(grad_out[t - 1])
        grad_xp = grad_a.transpose(0, 1) if ctx.needs_input_grad[0] else None
        grad_W = None
        if ctx.needs_input_grad[2]:
            grad_W = hs[:-1].reshape(-1, units).t() @ grad_a.reshape(-1, units)
        ctx.hs = ctx.ys = ctx.W = ctx.params = None
        return (grad_xp, g, grad_W, None, None, None, None) + (None,) * len(params)


def wcrnn_scan(xp, h0, recurrent_kernel, coupling, activation, residual,
               go_backwards=False, return_sequences=True, residual_trainable=False):
    if residual is None:
        kind, params = "none", ()
    else:
        form = residual.linear_form(xp.dtype)
        kind, params = form[0], tuple(p.detach() for p in form[1:])
    if go_backwards:
        xp = torch.flip(xp, dims=(1,))
    out = _WCRNNFunction.apply(
        xp, h0, recurrent_kernel, float(coupling), _activation_name(activation), kind,
        bool(return_sequences), *params
    )
    if return_sequences:
        h_last = out[-1]
        return h_last, out.transpose(0, 1), h_last
    return out, None, out
