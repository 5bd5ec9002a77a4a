"""The QR loop: one step, its schedule, and the compiled runners.

One step from the carry (`carry.Carry`) at t - 1, for inputs x_t:

    Z = J_t Q_{t-1}                      (the cell's tangent map, or autodiff)
    if a QR is due at t:  Q_t, log|diag R_t| = qr(Z), summed for t > warmup
    else:                 Q_t = Z
    s_t = step(s_{t-1}, x_t)

A QR is due every `qr_interval` steps, at t = warmup, at t = T, and at the
end of each history window; with `qr_interval="auto"` the next QR is
scheduled from the rates just measured (`next_interval`). Written once with
`keras.ops`: the same body runs in JAX's `lax.scan`, TensorFlow's while
loop, PyTorch's eager loop (`_backends`), and `kr.layers.LyapunovExponents`'
differentiable `keras.ops.scan`.
"""

import contextlib
import inspect
import weakref

import keras
import numpy as np
from keras import ops

from keras_residual._keras_compat import float64_ops
from keras_residual.dynamics.lyapunov import qr as qr_lib
from keras_residual.dynamics.lyapunov import tangents as tangents_lib
from keras_residual.dynamics.lyapunov.carry import Carry
from keras_residual.dynamics.lyapunov.carry import compensated_sum
from keras_residual.dynamics.lyapunov.carry import sum_dtype

# qr_interval="auto": after each QR the next interval is chosen so that, at the
# rates just measured, the columns of Q grow apart by at most exp(spread)
# (the relative accuracy of the smallest R_jj degrades as ~c n eps exp(spread),
# Householder's backward error: in float32 at the limit e^6 ~ 400 that is
# 1e-4-1e-3 per QR, measured ~7e-4 on a 4-unit GRU; float64 QRs, or a QR
# every step, avoid it) and no column grows or
# shrinks by more than exp(growth) (overflow), within [1, AUTO_MAX_INTERVAL]
# steps and at most twice the interval just measured: a rate measured over a
# short or transient stretch can be far too low (with an orthogonal recurrent
# matrix and h_0 = 0 the first step's spread is ~0), and a too-long interval
# loses the tail before the next QR can see it. The float32 limits serve
# float64 too: on torch and jax, Keras computes some float64 ops of a cell in
# float32 (keras-team/keras#23704), so a "float64" tangent may carry float32
# errors.
AUTO_LIMITS = {"spread": 6.0, "growth": 20.0}
AUTO_MAX_INTERVAL = 64

# The QR precision of a float32 run (qr_dtype "auto") follows the same limit:
# float32 when the spread predicted for the QR (the rate of the last QR times
# the steps since) is at most AUTO_LIMITS["spread"], where a float32
# Householder QR gives the smallest R_jj to a relative ~eps32 * exp(spread);
# float64 otherwise (an LSTM's full spectrum spans ~10 per step, and a float32
# QR biases its tail by ~1e-3) and for the first QR, before a rate is known.


@contextlib.contextmanager
def compute_scope(backend, dtype, qr_dtype=None):
    """The backend's scope for a computation in `dtype` with QRs in
    `qr_dtype` (JAX's x64 mode when either is float64), and float64 Keras
    ops that stay float64 on every backend (`_keras_compat.float64_ops`)."""
    qr_dtype = sum_dtype(qr_dtype) if qr_dtype is not None else None
    wide = "float64" if "float64" in (dtype, qr_dtype) else dtype
    with backend.compute_scope(wide):
        with float64_ops() if wide == "float64" else contextlib.nullcontext():
            yield


def when(pred, true_fn, false_fn):
    """`true_fn()` if `pred` else `false_fn()`: Python control flow in an
    eager loop (pred a Python bool), `ops.cond` in a traced one."""
    if isinstance(pred, (bool, np.bool_)):
        return true_fn() if pred else false_fn()
    return ops.cond(pred, true_fn, false_fn)


def choose(pred, a, b):
    """`a` if `pred` else `b`, elementwise for a traced `pred`."""
    if isinstance(pred, (bool, np.bool_)):
        return a if pred else b
    return ops.where(pred, a, b)


def qr_due(t, next_qr, warmup, steps, qr_interval, window=None):
    """The QR schedule: whether step t ends with a QR. Python operators, so
    the same code serves Python integers (the eager loop) and tensors."""
    due = (t >= next_qr) if qr_interval == "auto" else (t % qr_interval == 0)
    due = due | (t == warmup) | (t == steps)
    if window is not None:
        due = due | ((t > warmup) & ((t - warmup) % window == 0))
    return due


def spread_rate(log_d, elapsed):
    """Per step, the largest (over the batch) spread max_j - min_j of the
    log R_jj of a QR taken `elapsed` steps after the last one (0 for one
    column; NaN stays NaN)."""
    elapsed = ops.cast(elapsed, log_d.dtype)
    return ops.max(ops.max(log_d, axis=-1) - ops.min(log_d, axis=-1)) / elapsed


def next_interval(log_d, elapsed, spread):
    """Steps until the next QR for qr_interval="auto": the columns of Q may
    grow apart by at most exp(spread limit) and any column by exp(growth
    limit), at the rates measured over the last `elapsed` steps (`spread`:
    `spread_rate`), and the interval at most doubles."""
    dtype = log_d.dtype
    growth = ops.max(ops.abs(log_d)) / ops.cast(elapsed, dtype)
    tiny = ops.cast(1e-12, dtype)
    q = ops.minimum(
        AUTO_LIMITS["spread"] / ops.maximum(spread, tiny),
        AUTO_LIMITS["growth"] / ops.maximum(growth, tiny),
    )
    q = ops.minimum(q, ops.cast(2 * elapsed, dtype))
    q = ops.where(ops.isfinite(q), ops.clip(ops.floor(q), 1, AUTO_MAX_INTERVAL), 1)
    return ops.cast(q, "int32")


class Dynamics:
    """A cell's step and tangent on concatenated states (batch, S).

    `step(s, x)` is s_t; `propagate(s, Q, x)` is `(s_t, J_t Q)`, from the
    cell's tangent map in mode "analytic", else from the backend's
    forward-mode autodiff. Both run the cell's `call`, not `__call__`: the
    cell is built and the inputs are in its dtype already, and on torch the
    Layer machinery around `call` costs more than the step itself for small
    cells. The cell is held weakly (loops are cached per cell).
    """

    def __init__(self, cell, layout, mode, backend):
        self._cell = weakref.ref(cell)
        self.layout = layout
        self.dtype = cell.compute_dtype
        self.tangent = tangents_lib.tangent_map(cell) if mode == "analytic" else None
        self.backend = backend
        self._training = {"training": False} if "training" in inspect.signature(
            cell.call).parameters else {}

    def step(self, s, x):
        layout = self.layout
        _, new_states = self._cell().call(x, layout.pack(layout.split(s)), **self._training)
        return layout.flatten(new_states)

    def propagate(self, s, Q, x):
        if self.tangent is not None:
            new_states, Z = self.tangent(x, self.layout.split(s), Q)
            return self.layout.flatten(new_states), Z
        s_new, Z = self.backend.tangent_map(lambda v: self.step(v, x), s, Q)
        return s_new, ops.cast(Z, self.dtype)


def step_function(cell, layout, mode, qr_method, qr_interval, backend, qr_dtype,
                  state_gradient=True, window=None):
    """`body(carry, x_t, t, warmup, steps) -> carry`, one step of the loop.

    `qr_dtype` is the QRs' dtype, or "auto": for a float32 cell, float32 when
    the spread rate predicts the columns of Z within exp(AUTO_LIMITS["spread"])
    of each other, float64 otherwise. `J_t Q` comes from the cell's tangent
    map (`tangents`) in mode "analytic", else from the backend's forward-mode
    autodiff. `state_gradient=False` stops the gradient at each state (the
    gradient then sees the Jacobians along a fixed trajectory). `window`
    (steps) adds a QR at the end of each history window after the warm-up.
    On eager backends (torch) t and the carry's counters are Python
    integers; the same code then runs as Python control flow.
    """
    dynamics = Dynamics(cell, layout, mode, backend)
    dtype = cell.compute_dtype

    adaptive = qr_dtype == "auto" and dtype != "float64"
    sums = sum_dtype(qr_dtype)

    def qr_in(precision, Z):
        Q_qr, log_d = qr_lib.qr(ops.cast(Z, precision), qr_method)
        return ops.cast(Q_qr, dtype), ops.cast(log_d, sums)

    def body(carry, x, t, warmup, steps):
        s = carry.state if state_gradient else ops.stop_gradient(carry.state)
        s_new, Z = dynamics.propagate(s, carry.frame, x)
        due = True if qr_interval == 1 else qr_due(
            t, carry.next_qr, warmup, steps, qr_interval, window)

        def with_qr():
            elapsed = choose(t - carry.last_qr > 1, t - carry.last_qr, 1)
            if adaptive:  # the QR precision rule above `compute_scope`
                narrow = (carry.spread_rate * ops.cast(elapsed, carry.spread_rate.dtype)
                          <= AUTO_LIMITS["spread"])
                Q_qr, log_d = when(narrow, lambda: qr_in(dtype, Z), lambda: qr_in("float64", Z))
            else:
                Q_qr, log_d = qr_in(sums, Z)
            log_sum, compensation = compensated_sum(
                carry.log_sum, carry.compensation,
                choose(t > warmup, log_d, ops.zeros_like(log_d)),
            )
            spread = spread_rate(log_d, elapsed)
            if qr_interval == "auto":
                interval = next_interval(log_d, elapsed, spread)
                if isinstance(t, int):  # the eager loop schedules with Python integers
                    interval = int(ops.convert_to_numpy(interval))
                next_qr = t + interval
            else:
                next_qr = carry.next_qr
            return Q_qr, log_sum, compensation, ops.cast(spread, "float32"), next_qr

        def without_qr():  # Q_t = Z: the frame grows until the next QR
            return Z, carry.log_sum, carry.compensation, carry.spread_rate, carry.next_qr

        Q_new, log_sum, compensation, rate, next_qr = when(due, with_qr, without_qr)
        return Carry(
            state=ops.cast(s_new, dtype),
            frame=Q_new,
            log_sum=log_sum,
            compensation=compensation,
            spread_rate=rate,
            last_qr=choose(due, t, carry.last_qr),
            next_qr=next_qr,
            num_qr=carry.num_qr + (int(due) if isinstance(due, bool) else ops.cast(due, "int32")),
        )

    return body


_RUNNERS = weakref.WeakKeyDictionary()


def runner(cell, layout, mode, qr_method, qr_interval, backend, qr_dtype, window=None):
    """The compiled loop for a cell and settings (cached per cell)."""
    runners = _RUNNERS.setdefault(cell, {})
    key = (keras.backend.backend(), mode, qr_method, qr_interval, qr_dtype, window)
    if key not in runners:
        body = step_function(cell, layout, mode, qr_method, qr_interval, backend, qr_dtype,
                             window=window)
        # Few QRs are expected with a fixed interval > 1, and with "auto" on a
        # weakly coupled WCRNN (its exponents lie close together).
        rare_qr = qr_interval != 1 and (qr_interval != "auto" or _weakly_coupled(cell))
        runners[key] = backend.make_runner(body, cell.variables, rare_qr=rare_qr,
                                           counters=Carry.COUNTERS)
    return runners[key]


def _weakly_coupled(cell):
    coupling = getattr(cell, "coupling", None)
    return coupling is not None and coupling < 0.5
