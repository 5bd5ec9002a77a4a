"""Lyapunov spectra of recurrent cells (DESIGN.md, section 3).

`lyapunov_spectrum(cell_or_layer, inputs)` runs the standard QR
(Benettin / Shimada-Nagashima) algorithm along a batch of input-driven
trajectories of any Keras RNN cell:

    h_0 = initial state;  Q_0 = first k columns of a seeded random orthogonal S x S matrix
    for t = 1..T:
        J_t = d h_t / d h_{t-1} at (h_{t-1}, x_t)
        Z   = J_t Q_{t-1}
        at t = warmup, every qr_interval steps and at t = T:
            Q_t, R_t = qr(Z) with diag(R_t) > 0; for t > warmup add log diag(R_t)
        otherwise Q_t = Z
        h_t = step(h_{t-1}, x_t)
    lambda_i = (sum of log R_ii) / (T - warmup)

The state vector is the concatenation of all the cell's states (LSTM: [h, c],
S = 2 * units). Jacobian-matrix products come from the cell's analytic
`jacobian` when it has one (`WCRNNCell`), else from forward-mode autodiff on
the k columns of Q. Backend-specific code (autodiff, QR, compiled loop) is in
`_lyapunov_backends`; everything here uses `keras.ops`.
"""

import contextlib
import dataclasses
import functools
import inspect
import math
import time
import warnings
import weakref

import keras
import numpy as np
from keras import ops

from keras_residual import _activations
from keras_residual.dynamics import _lyapunov_backends

_DTYPES = ("float32", "float64")
_JACOBIANS = ("auto", "analytic", "autodiff")
_QR_METHODS = ("auto", "householder", "cholesky")


# --------------------------------------------------------------------------
# Result and derived figures
# --------------------------------------------------------------------------


def kaplan_yorke_dimension(exponents):
    """Kaplan–Yorke (Lyapunov) dimension of a spectrum.

    With the exponents sorted descending and `j` the largest index such that
    `lambda_1 + ... + lambda_j >= 0`:

        D_KY = j + (lambda_1 + ... + lambda_j) / |lambda_{j+1}|

    It is 0 when `lambda_1 < 0`, and `k` when the sum of all `k` given
    exponents is >= 0 (a truncated spectrum cannot tell more).

    Args:
        exponents: 1-D array-like of Lyapunov exponents (any order).

    Returns:
        A float; NaN when an exponent is NaN.

    Example:

    >>> kr.dynamics.kaplan_yorke_dimension([0.419, -1.623])
    1.258...
    """
    lam = np.asarray(exponents, dtype="float64").ravel()
    if lam.size == 0:
        raise ValueError("Argument `exponents` must not be empty; received an empty array.")
    if np.any(np.isnan(lam)):
        return float("nan")
    lam = -np.sort(-lam)
    with np.errstate(invalid="ignore"):
        partial = np.cumsum(lam)
    nonnegative = np.nonzero(partial >= 0)[0]
    if nonnegative.size == 0:
        return 0.0
    j = int(nonnegative[-1]) + 1  # number of exponents in the non-negative partial sum
    if j == lam.size:
        return float(lam.size)
    if not np.isfinite(partial[j - 1]):
        return float(lam.size) if partial[j - 1] > 0 else float("nan")
    return float(j + partial[j - 1] / abs(lam[j]))


@dataclasses.dataclass(frozen=True, eq=False)
class LyapunovSpectrum:
    """The Lyapunov spectrum of a recurrent cell along a batch of inputs.

    Attributes:
        exponents: `(k,)` NumPy array, natural log per time step, sorted
            descending, averaged over the batch (each trajectory's exponents
            are sorted before averaging).
        per_sequence: `(batch, k)` NumPy array, each row sorted descending.
        num_exponents: k.
        state_size: S, the size of the concatenated state.
        steps: T, the number of time steps of the inputs.
        warmup: steps before the exponents are accumulated.
        qr_interval: steps between re-orthonormalisations (or `"auto"`).
        seed: seed of the initial orthogonal frame.
        dtype: `"float32"` or `"float64"`.
        jacobian: `"analytic"` (the cell's `jacobian`) or `"autodiff"`.
        qr_method: `"householder"` or `"cholesky"` (CholeskyQR2).
        backend: the Keras backend that computed it.
        num_qr: the number of QR factorisations done.
        seconds: wall time of the computation.

    Derived figures (properties): `max`, `mean`, `sum`,
    `kaplan_yorke_dimension`, `entropy_rate` (sum of the positive exponents,
    Pesin's bound on the Kolmogorov–Sinai entropy), `is_finite`.
    """

    exponents: np.ndarray
    per_sequence: np.ndarray
    num_exponents: int
    state_size: int
    steps: int
    warmup: int
    qr_interval: int
    seed: int
    dtype: str
    jacobian: str
    qr_method: str
    backend: str
    num_qr: int = 0
    seconds: float = float("nan")

    @property
    def max(self):
        """The largest exponent."""
        return float(self.exponents[0])

    @property
    def mean(self):
        """The mean of the k exponents."""
        with np.errstate(invalid="ignore"):
            return float(np.mean(self.exponents))

    @property
    def sum(self):
        """The sum of the k exponents (the volume contraction rate when k = S)."""
        with np.errstate(invalid="ignore"):
            return float(np.sum(self.exponents))

    @property
    def kaplan_yorke_dimension(self):
        """Kaplan–Yorke dimension (see `kaplan_yorke_dimension`)."""
        return kaplan_yorke_dimension(self.exponents)

    @property
    def entropy_rate(self):
        """Sum of the positive exponents (NaN when an exponent is NaN)."""
        if np.any(np.isnan(self.exponents)):
            return float("nan")
        return float(np.sum(self.exponents[self.exponents > 0]))

    @property
    def is_finite(self):
        """Whether every per-trajectory exponent is finite."""
        return bool(np.all(np.isfinite(self.per_sequence)))

    def __repr__(self):
        shown = np.array2string(self.exponents[:6], precision=4, separator=", ")
        more = ", ..." if self.num_exponents > 6 else ""
        return (
            f"LyapunovSpectrum(k={self.num_exponents}, S={self.state_size}, "
            f"max={self.max:.4g}, ky_dim={self.kaplan_yorke_dimension:.4g}, "
            f"exponents={shown[:-1]}{more}], batch={self.per_sequence.shape[0]}, "
            f"T={self.steps}, warmup={self.warmup}, dtype={self.dtype}, "
            f"jacobian={self.jacobian}, qr={self.qr_method}, backend={self.backend})"
        )


# --------------------------------------------------------------------------
# A cell from a map, for known answers and custom dynamics
# --------------------------------------------------------------------------


class MapCell(keras.layers.Layer):
    """A recurrent cell defined by a map: `h_t = function(h_{t-1}, x_t)`.

    Turns any differentiable map written with `keras.ops` into an RNN cell,
    so `lyapunov_spectrum` (autodiff path) applies to it: the logistic map,
    the Hénon map, a hand-written network. Its only state is `h`. It has no
    weights and is not meant for `.keras` files (the function is Python code).

    Args:
        function: callable `(state, inputs) -> new_state` on batches,
            `state` of shape `(batch, state_size)`, `inputs` of shape
            `(batch, features)`, written with `keras.ops`.
        state_size: positive integer, the size of the state.

    Call arguments:
        inputs: `(batch, features)`.
        states: `[h]` or `h`, `(batch, state_size)`.

    Returns:
        `(h_t, [h_t])`.

    Example:

    >>> def henon(h, x, a=1.4, b=0.3):
    ...     return ops.stack([1 - a * h[:, 0] ** 2 + h[:, 1], b * h[:, 0]], axis=-1)
    >>> cell = kr.dynamics.MapCell(henon, state_size=2)
    >>> spectrum = kr.dynamics.lyapunov_spectrum(
    ...     cell, np.zeros((8, 3000, 1)), initial_state=np.full((8, 2), 0.1),
    ...     warmup=100, dtype="float64")
    >>> spectrum.exponents  # about [0.42, -1.62]
    """

    def __init__(self, function, state_size, **kwargs):
        if not callable(function):
            raise TypeError(
                f"Argument `function` of MapCell must be callable (state, inputs) -> "
                f"state; received function={function!r}."
            )
        if isinstance(state_size, bool) or not isinstance(state_size, int) or state_size <= 0:
            raise ValueError(
                "Argument `state_size` of MapCell must be a positive integer; "
                f"received state_size={state_size!r}."
            )
        super().__init__(**kwargs)
        self.function = function
        self.state_size = state_size
        self.output_size = state_size

    def build(self, input_shape):
        self.built = True

    def call(self, inputs, states):
        h = states[0] if isinstance(states, (list, tuple)) else states
        new = self.function(h, inputs)
        return new, [new]

    def get_config(self):
        # In-process only (the function is Python code): lets
        # `lyapunov_spectrum(dtype="float64")` clone the cell.
        return {**super().get_config(), "function": self.function, "state_size": self.state_size}


# --------------------------------------------------------------------------
# Argument checks
# --------------------------------------------------------------------------


def _check_int(name, value, low, high=None, allowed=None):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(
            f"Argument `{name}` must be an integer ({allowed}); received "
            f"{name}={value!r} of type {type(value).__name__}."
        )
    value = int(value)
    if value < low or (high is not None and value > high):
        raise ValueError(f"Argument `{name}` must be {allowed}; received {name}={value}.")
    return value


def _check_choice(name, value, choices):
    if value not in choices:
        raise ValueError(f"Argument `{name}` must be one of {choices}; received {name}={value!r}.")
    return value


def _resolve_cell(cell_or_layer):
    """(cell, go_backwards) from an RNN layer or a cell."""
    if isinstance(cell_or_layer, keras.Model):
        raise TypeError(
            "Argument `cell_or_layer` must be a recurrent layer (keras.layers.RNN, "
            "e.g. kr.layers.WCRNN, keras.layers.LSTM) or an RNN cell; received the model "
            f"{cell_or_layer.name!r}. Pass model.get_layer(name), or use "
            "kr.callbacks.LyapunovCallback, which finds the model's recurrent layer."
        )
    if isinstance(cell_or_layer, keras.layers.RNN):
        return cell_or_layer.cell, bool(cell_or_layer.go_backwards)
    if isinstance(cell_or_layer, keras.layers.Layer) and hasattr(cell_or_layer, "state_size"):
        return cell_or_layer, False
    raise TypeError(
        "Argument `cell_or_layer` must be a recurrent layer (keras.layers.RNN, e.g. "
        "kr.layers.WCRNN, keras.layers.LSTM) or an RNN cell (a Keras layer with a "
        f"`state_size`, e.g. keras.layers.LSTMCell); received {cell_or_layer!r} of type "
        f"{type(cell_or_layer).__name__}, which has no recurrent cell."
    )


def _state_sizes(cell):
    structure = cell.state_size
    flat = keras.tree.flatten(structure)
    if not flat or not all(isinstance(s, (int, np.integer)) and s > 0 for s in flat):
        raise TypeError(
            f"Lyapunov spectra need cells whose states are vectors; cell {cell.name!r} "
            f"has state_size={structure!r} (allowed: an integer or a nested list of integers)."
        )
    return structure, [int(s) for s in flat]


# --------------------------------------------------------------------------
# Cells in another dtype
# --------------------------------------------------------------------------

_CLONES = weakref.WeakKeyDictionary()


def _cell_in_dtype(cell, dtype):
    """The cell itself when it computes in `dtype`, else a copy that does,
    carrying the cell's current weights."""
    if cell.compute_dtype == dtype and all(
        keras.backend.standardize_dtype(v.dtype) == dtype
        for v in cell.weights
        if "float" in keras.backend.standardize_dtype(v.dtype)
    ):
        return cell
    clones = _CLONES.setdefault(cell, {})
    clone = clones.get(dtype)
    if clone is None:
        try:
            config = cell.get_config()
            config["dtype"] = dtype
            clone = cell.__class__.from_config(config)
        except Exception as error:  # noqa: BLE001 (user cells may fail in any way)
            raise TypeError(
                f"Cannot compute the spectrum of cell {cell.name!r} in {dtype}: it could not "
                f"be re-created from its config with dtype={dtype!r} ({error}). Give the cell "
                f"a complete get_config, build it with dtype={dtype!r}, or pass dtype=None."
            ) from error
        clones[dtype] = clone
    return clone


# --------------------------------------------------------------------------
# The loop body (keras.ops)
# --------------------------------------------------------------------------

_RUNNERS = weakref.WeakKeyDictionary()

# qr_interval="auto": after each QR the next interval is chosen so that, at the
# rates just measured, the columns of Q grow apart by at most exp(spread)
# (the relative accuracy of the smallest R_jj degrades as eps * exp(spread))
# and no column grows or shrinks by more than exp(growth) (overflow), within
# [1, _AUTO_MAX_INTERVAL] steps. The float32 limits serve float64 too: on
# torch and jax, Keras computes some float64 ops of a cell in float32
# (keras-team/keras#23704), so a "float64" tangent may carry float32 errors.
_AUTO_LIMITS = {"spread": 4.0, "growth": 20.0}
_AUTO_MAX_INTERVAL = 64


def _is_structured_wcrnn(cell):
    from keras_residual.layers.wcrnn_cell import WCRNNCell

    return (
        type(cell) is WCRNNCell
        and cell.has_analytic_jacobian
        and (cell.residual is None or cell.residual.linear)
    )


def _wcrnn_constants(cell, xs, dtype):
    """What a structured WCRNN step needs, read once per run: the input
    projection x_t U + b of every step (one product), W, and rho."""
    def weight(variable):
        return variable if variable.dtype == dtype else ops.cast(variable, dtype)

    projected = ops.einsum("tbf,fn->tbn", xs, weight(cell.kernel))
    if cell.bias is not None:
        projected = projected + weight(cell.bias)
    rho = None if cell.residual is None else cell.residual.prepare(dtype)
    return projected, {"recurrent": weight(cell.recurrent_kernel), "rho": rho}


def _wcrnn_step_and_product(cell, projected_t, h, Q, constants, derivative):
    """(h_t, J_t Q) for a WCRNNCell with a linear residual, without forming J_t:

        a_t     = x_t U + b + h_{t-1} W
        h_t     = rho(h_{t-1}) + coupling * sigma(a_t)
        J_t Q   = R Q + coupling * diag(sigma'(a_t)) (W^T Q)

    R Q applies the residual's structured map to the columns of Q (O(S k)
    for identity, diagonal and rotation residuals) and W^T Q is one matrix
    product shared by the batch: the same numbers as
    `(cell(x, h), cell.jacobian(x, h) @ Q)` (the tests check both against
    the NumPy reference), with a fraction of the operations.
    """
    recurrent, rho = constants["recurrent"], constants["rho"]
    a = projected_t + ops.einsum("bm,mn->bn", h, recurrent)
    y = cell.activation(a)
    h_new = cell.coupling * y
    Z = (cell.coupling * derivative(a, y))[:, :, None] * ops.einsum("mi,bmk->bik", recurrent, Q)
    if rho is not None:
        h_new = h_new + rho(h)
        # rho acts on the last axis: R Q = (rho(Q^T))^T, the columns as rows.
        Z = Z + ops.transpose(rho(ops.transpose(Q, (0, 2, 1))), (0, 2, 1))
    return h_new, Z


def _make_body(cell, structure, sizes, mode, qr_method, qr_interval, backend):
    """(prepare, body) of the loop.

    `prepare(xs) -> (per-step inputs, constants)` runs once per call of the
    compiled loop; `body(carry, x_t, t, warmup, steps, constants) -> carry`
    once per step. The carry is (s, Q, sum of log R_ii, step of the last QR,
    step of the next QR, number of QRs). On eager backends (torch) t and the
    three counters are Python integers and the QR schedule is plain Python.
    """
    cell_ref = weakref.ref(cell)
    dtype = cell.compute_dtype
    bounds = np.cumsum([0] + sizes)
    # WCRNNCell with a linear (or no) residual: J Q without forming J.
    structured = mode == "analytic" and _is_structured_wcrnn(cell)
    derivative = _activations.derivative(cell.activation) if structured else None

    def unflatten(s):
        parts = [s[:, int(a):int(b)] for a, b in zip(bounds[:-1], bounds[1:])]
        if isinstance(structure, (int, np.integer)):
            return parts
        return keras.tree.pack_sequence_as(structure, parts)

    def flatten(states):
        parts = keras.tree.flatten(states)
        return parts[0] if len(parts) == 1 else ops.concatenate(parts, axis=-1)

    # The cell's `call`, not `__call__`: the cell is built and the inputs are
    # in its dtype already, and on torch the Layer machinery around `call`
    # costs more than the step itself for small cells.
    takes_training = "training" in inspect.signature(cell.call).parameters

    def step_state(s, x):
        kwargs = {"training": False} if takes_training else {}
        _, new_states = cell_ref().call(x, unflatten(s), **kwargs)
        return flatten(new_states)

    def next_interval(log_d, elapsed):
        """Steps until the next QR for qr_interval="auto": the columns of Q may
        grow apart by at most exp(spread) and any column by exp(growth)."""
        elapsed = ops.cast(elapsed, dtype)
        spread = ops.max(ops.max(log_d, axis=-1) - ops.min(log_d, axis=-1)) / elapsed
        growth = ops.max(ops.abs(log_d)) / elapsed
        tiny = ops.cast(1e-12, dtype)
        q = ops.minimum(
            _AUTO_LIMITS["spread"] / ops.maximum(spread, tiny),
            _AUTO_LIMITS["growth"] / ops.maximum(growth, tiny),
        )
        q = ops.where(ops.isfinite(q), ops.clip(ops.floor(q), 1, _AUTO_MAX_INTERVAL), 1)
        return ops.cast(q, "int32")

    def prepare(xs):
        if structured:
            return _wcrnn_constants(cell_ref(), xs, dtype)
        return xs, {}

    def propagate(s, Q, x, constants):
        """(s_t, J_t Q)."""
        if structured:
            return _wcrnn_step_and_product(cell_ref(), x, s, Q, constants, derivative)
        if mode == "analytic":
            J = ops.cast(cell_ref().jacobian(x, unflatten(s)), dtype)
            # einsum, not matmul: keras.ops.matmul demotes float64 to
            # float32 on torch (keras-team/keras#23704).
            return step_state(s, x), ops.einsum("bij,bjk->bik", J, Q)
        s_new, Z = backend.tangent_map(lambda v: step_state(v, x), s, Q)
        return s_new, ops.cast(Z, dtype)

    def python_body(carry, x, t, warmup, steps, constants):
        s, Q, acc, last_qr, next_qr, num_qr = carry
        s_new, Z = propagate(s, Q, x, constants)
        if qr_interval == "auto":
            do_qr = t >= next_qr or t == warmup or t == steps
        else:
            do_qr = t % qr_interval == 0 or t == warmup or t == steps
        if not do_qr:
            return (ops.cast(s_new, dtype), Z, acc, last_qr, next_qr, num_qr)
        Q_new, log_d = backend.qr(Z, qr_method)
        if t > warmup:
            acc = acc + log_d
        if qr_interval == "auto":
            next_qr = t + int(ops.convert_to_numpy(next_interval(log_d, max(t - last_qr, 1))))
        return (ops.cast(s_new, dtype), Q_new, acc, t, next_qr, num_qr + 1)

    def body(carry, x, t, warmup, steps, constants):
        if isinstance(t, int):
            return python_body(carry, x, t, warmup, steps, constants)
        s, Q, acc, last_qr, next_qr, num_qr = carry
        t = ops.cast(t, "int32")
        s_new, Z = propagate(s, Q, x, constants)
        if qr_interval == 1:
            Q_new, log_d = backend.qr(Z, qr_method)
            do_qr = ops.convert_to_tensor(True)
        else:
            if qr_interval == "auto":
                due = ops.greater_equal(t, next_qr)
            else:
                due = ops.equal(ops.mod(t, qr_interval), 0)
            boundary = ops.logical_or(ops.equal(t, warmup), ops.equal(t, steps))
            do_qr = ops.logical_or(due, boundary)

            def with_qr():
                Q_qr, log_d_qr = backend.qr(Z, qr_method)
                if qr_interval != "auto":
                    return Q_qr, log_d_qr, next_qr
                interval = next_interval(log_d_qr, ops.maximum(t - last_qr, 1))
                return Q_qr, log_d_qr, t + interval

            def without_qr():
                return Z, ops.zeros_like(acc), next_qr

            Q_new, log_d, next_qr = ops.cond(do_qr, with_qr, without_qr)
        accumulate = ops.logical_and(do_qr, ops.greater(t, warmup))
        acc = acc + ops.where(accumulate, log_d, ops.zeros_like(log_d))
        last_qr = ops.where(do_qr, t, last_qr)
        num_qr = num_qr + ops.cast(do_qr, "int32")
        return (ops.cast(s_new, dtype), Q_new, acc, last_qr, next_qr, num_qr)

    return prepare, body


def _runner(cell, structure, sizes, mode, qr_method, qr_interval, backend):
    runners = _RUNNERS.setdefault(cell, {})
    key = (keras.backend.backend(), mode, qr_method, qr_interval)
    if key not in runners:
        prepare, body = _make_body(cell, structure, sizes, mode, qr_method, qr_interval, backend)
        # Few QRs are expected with a fixed interval > 1, and with "auto" on a
        # WCRNN (weakly coupled: its exponents lie close together).
        rare_qr = qr_interval != 1 and (
            qr_interval != "auto" or (mode == "analytic" and _is_structured_wcrnn(cell))
        )
        runners[key] = backend.make_runner(prepare, body, cell.variables, rare_qr=rare_qr)
    return runners[key]


@functools.lru_cache(maxsize=16)
def _orthogonal(state_size, seed):
    """A seeded random orthogonal S x S matrix (float64, read-only)."""
    rng = np.random.default_rng(seed)
    with _single_threaded_blas():
        q, r = np.linalg.qr(rng.standard_normal((state_size, state_size)))
    q = q * np.where(np.diag(r) < 0, -1.0, 1.0)[None, :]
    q.setflags(write=False)
    return q


def _single_threaded_blas():
    # One small QR: NumPy's multi-threaded OpenBLAS can take 100x longer on a
    # busy machine than one thread does.
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def _initial_frame(state_size, k, seed, dtype):
    """Q_0: the first k columns of the seeded random orthogonal S x S matrix
    (so the top-k frame is the first k columns of the full one)."""
    return _orthogonal(state_size, seed)[:, :k].astype(dtype)


def _initial_states(initial_state, batch, sizes, dtype):
    total = sum(sizes)
    if initial_state is None:
        return np.zeros((batch, total), dtype=dtype)
    if isinstance(initial_state, (list, tuple)):
        parts = [np.asarray(ops.convert_to_numpy(p)) for p in initial_state]
        if len(parts) != len(sizes):
            raise ValueError(
                f"Argument `initial_state` must have one entry per state of the cell "
                f"({len(sizes)}: sizes {sizes}); received {len(parts)} entries."
            )
        parts = [np.broadcast_to(p, p.shape if p.ndim == 2 else (batch,) + p.shape) for p in parts]
        state = np.concatenate(parts, axis=-1)
    else:
        state = np.asarray(ops.convert_to_numpy(initial_state))
    if state.ndim == 1:
        state = np.broadcast_to(state, (batch,) + state.shape)
    if state.shape != (batch, total):
        raise ValueError(
            f"Argument `initial_state` must have shape (batch, state_size) = ({batch}, {total}) "
            f"(the concatenated states), (state_size,), or be a list of per-state arrays; "
            f"received shape {tuple(np.shape(initial_state))}."
        )
    return np.array(state, dtype=dtype)


def lyapunov_spectrum(
    cell_or_layer,
    inputs,
    num_exponents=None,
    warmup=0,
    qr_interval=1,
    initial_state=None,
    seed=None,
    dtype=None,
    progress=False,
    jacobian="auto",
    qr_method="auto",
):
    """Lyapunov spectrum of a recurrent cell driven by a batch of inputs.

    Runs the QR algorithm of DESIGN.md section 3 along each input sequence
    at once (batched Jacobian products and batched QR, in one compiled loop
    where the backend allows), with memory independent of the sequence
    length. Exponents are natural logs per time step.

    On CPU, torch's intra-op threads and the OpenBLAS that JAX's LAPACK calls
    use are limited to one thread while the spectrum is computed: the work is
    a batch of small matrices, and multi-threaded kernels made it up to 40x
    slower on a busy machine. The settings are restored afterwards.

    Args:
        cell_or_layer: a `keras.layers.RNN` layer (`kr.layers.WCRNN`,
            `keras.layers.LSTM`, `keras.layers.RNN(cell)`, ...) or an RNN
            cell (`kr.layers.WCRNNCell`, `keras.layers.SimpleRNNCell`,
            `GRUCell`, `LSTMCell`, `kr.dynamics.MapCell`, your own). A
            layer's `go_backwards` is honoured.
        inputs: `(batch, timesteps, features)` array or tensor.
        num_exponents: k, the number of leading exponents, `1 <= k <= S`
            (S = total state size, `2 * units` for an LSTM); `None` for all.
        warmup: steps run before accumulating, `0 <= warmup < timesteps`.
        qr_interval: steps between QR re-orthonormalisations (>= 1), or
            `"auto"`. Larger is faster and exact in exact arithmetic, but
            between QRs the columns of Q grow apart as
            exp(t * (lambda_1 - lambda_k)), which costs accuracy in the
            smallest exponents. `"auto"` picks each interval from the rates
            measured at the previous QR (so that the columns grow apart by at
            most a factor e^4 between QRs; at most 64 steps): many
            steps for a weakly coupled network, one for an LSTM.
        initial_state: `None` (zeros), an array `(batch, S)` or `(S,)` of
            the concatenated states, or a list with one array per state.
        seed: seed of the random orthogonal initial frame Q_0 (`None`
            means 0: results are deterministic).
        dtype: `"float32"`, `"float64"` (validation; the cell is copied to
            compute in float64) or `None` (the cell's compute dtype, float32
            for mixed-precision cells). On torch and jax, Keras 3.15 still
            computes some float64 ops in float32 (`ops.matmul` on torch,
            `ops.tanh` on jax; keras-team/keras#23704), so a Keras cell's
            float64 step is only float64 on TensorFlow; the algorithm's own
            products and QRs are float64 everywhere.
        progress: whether to show a `keras.utils.Progbar`.
        jacobian: `"auto"` (the cell's analytic `jacobian` when
            `cell.has_analytic_jacobian`, else autodiff), `"analytic"` or
            `"autodiff"` (forward mode on the k columns of Q).
        qr_method: `"auto"`, `"householder"` or `"cholesky"` (CholeskyQR2
            from matrix products on column-scaled Z, with a Householder
            fallback for steps it cannot handle, e.g. every step of an LSTM's
            full spectrum). `"auto"`: Householder on CPUs (batched LAPACK is
            fast there) and for float64, CholeskyQR2 on GPUs with jax and
            torch (where batched small QRs are slow).

    Returns:
        A `LyapunovSpectrum` with `exponents` (k,), `per_sequence`
        (batch, k), `max`, `kaplan_yorke_dimension`, `entropy_rate` and the
        settings used. Non-finite exponents (a state that overflowed, a
        singular Jacobian) are returned as inf/nan with a `RuntimeWarning`.

    Raises:
        TypeError: `cell_or_layer` has no recurrent cell, or an argument has
            the wrong type.
        ValueError: a bad value (`k > S`, `warmup >= timesteps`, inputs not
            of rank 3, ...); the message names the argument and the value.

    Example:

    >>> radii = [1.0, 0.8, 0.6, 0.4]
    >>> layer = kr.layers.WCRNN(4, coupling=1e-5,
    ...     residual=kr.residuals.Heterogeneous(radii=radii))
    >>> x = np.random.normal(size=(8, 300, 1)).astype("float32")
    >>> _ = layer(x)  # build
    >>> spectrum = kr.dynamics.lyapunov_spectrum(layer, x, warmup=100)
    >>> np.allclose(spectrum.exponents, np.log(radii), atol=1e-3)
    True
    >>> abs(spectrum.max) < 1e-3  # the critical unit (radius 1)
    True
    """
    start = time.perf_counter()
    backend = _lyapunov_backends.get_backend()
    cell, go_backwards = _resolve_cell(cell_or_layer)

    # ---- inputs
    if inputs is None:
        raise ValueError("Argument `inputs` must be a (batch, timesteps, features) array; received None.")
    try:
        x = np.asarray(ops.convert_to_numpy(inputs))
    except Exception as error:  # noqa: BLE001
        raise TypeError(
            f"Argument `inputs` must be an array or tensor; received {type(inputs).__name__}."
        ) from error
    if x.ndim != 3:
        raise ValueError(
            "Argument `inputs` must have rank 3 (batch, timesteps, features); received "
            f"shape {x.shape} (rank {x.ndim})."
            + (" Add a feature axis: inputs[..., None]." if x.ndim == 2 else "")
        )
    if min(x.shape) == 0:
        raise ValueError(f"Argument `inputs` must not be empty; received shape {x.shape}.")
    if not np.issubdtype(x.dtype, np.number) and x.dtype != bool:
        raise TypeError(f"Argument `inputs` must be numeric; received dtype {x.dtype}.")
    batch, steps = x.shape[0], x.shape[1]

    # ---- options
    warmup = _check_int("warmup", warmup, 0, steps - 1, f"an integer in [0, timesteps - 1 = {steps - 1}]")
    if qr_interval != "auto":
        qr_interval = _check_int("qr_interval", qr_interval, 1, None, 'an integer >= 1 or "auto"')
    if seed is None:
        seed = 0
    seed = _check_int("seed", seed, 0, None, "None or an integer >= 0")
    _check_choice("jacobian", jacobian, _JACOBIANS)
    _check_choice("qr_method", qr_method, _QR_METHODS)
    if dtype is not None:
        try:
            dtype = keras.backend.standardize_dtype(dtype)
        except Exception:  # noqa: BLE001
            pass
        _check_choice("dtype", dtype, _DTYPES + (None,))
    else:
        dtype = cell.compute_dtype if cell.compute_dtype in _DTYPES else "float32"

    structure, sizes = _state_sizes(cell)
    state_size = sum(sizes)
    if num_exponents is None:
        k = state_size
    else:
        k = _check_int(
            "num_exponents", num_exponents, 1, state_size,
            f"None or an integer in [1, state size = {state_size}] for cell {cell.name!r}",
        )

    with backend.compute_scope(dtype):
        # ---- the cell, built, in the requested dtype
        h0 = _initial_states(initial_state, batch, sizes, dtype)
        if not cell.built:
            _call_checked(cell, x[:, 0].astype("float32"), h0.astype("float32"), structure, sizes)
        work_cell = _cell_in_dtype(cell, dtype)
        if work_cell is not cell:
            if not work_cell.built:
                _call_checked(work_cell, x[:, 0].astype(dtype), h0, structure, sizes)
            work_cell.set_weights(
                [np.asarray(w, dtype=v.dtype) for w, v in zip(cell.get_weights(), work_cell.weights)]
            )
        _call_checked(work_cell, x[:, 0].astype(dtype), h0, structure, sizes)

        has_analytic = bool(getattr(work_cell, "has_analytic_jacobian", False)) and callable(
            getattr(work_cell, "jacobian", None)
        )
        if jacobian == "auto":
            mode = "analytic" if has_analytic else "autodiff"
        elif jacobian == "analytic" and not has_analytic:
            raise ValueError(
                f"Argument `jacobian` is 'analytic' but cell {cell.name!r} "
                f"({type(cell).__name__}) has no analytic Jacobian "
                "(`has_analytic_jacobian` is not True); use jacobian='auto' or 'autodiff'."
            )
        else:
            mode = jacobian
        if qr_method == "auto":
            qr_used = backend.default_qr_method(dtype, _device_kind())
        else:
            qr_used = qr_method

        # ---- the loop
        xs = np.swapaxes(x, 0, 1).astype(dtype)
        if go_backwards:
            xs = xs[::-1]
        Q0 = np.broadcast_to(_initial_frame(state_size, k, seed, dtype), (batch, state_size, k))
        carry = (
            ops.convert_to_tensor(h0, dtype=dtype),
            ops.convert_to_tensor(np.ascontiguousarray(Q0), dtype=dtype),
            ops.zeros((batch, k), dtype=dtype),
            ops.convert_to_tensor(0, dtype="int32"),  # step of the last QR
            ops.convert_to_tensor(1, dtype="int32"),  # step of the next QR ("auto")
            ops.convert_to_tensor(0, dtype="int32"),  # number of QRs
        )
        run = _runner(work_cell, structure, sizes, mode, qr_used, qr_interval, backend)
        xs_tensor = ops.convert_to_tensor(np.ascontiguousarray(xs), dtype=dtype)
        if progress:
            chunk = max(1, math.ceil(steps / 20))
            bar = keras.utils.Progbar(steps, unit_name="step")
            for t0 in range(0, steps, chunk):
                carry = run(carry, xs_tensor[t0:t0 + chunk], t0, warmup, steps)
                bar.update(min(steps, t0 + chunk))
        else:
            carry = run(carry, xs_tensor, 0, warmup, steps)

        acc = np.asarray(ops.convert_to_numpy(carry[2]), dtype="float64")
        num_qr = int(ops.convert_to_numpy(carry[5]))

    # ---- result
    with np.errstate(invalid="ignore", over="ignore"):
        per_sequence = -np.sort(-(acc / (steps - warmup)), axis=-1)
        exponents = np.mean(per_sequence, axis=0)
    if not np.all(np.isfinite(per_sequence)):
        bad = int(np.sum(~np.all(np.isfinite(per_sequence), axis=-1)))
        warnings.warn(
            f"Lyapunov spectrum of cell {cell.name!r}: {bad} of {batch} trajectories gave "
            "non-finite exponents (the state overflowed, or the Jacobian became singular); "
            "they are returned as inf/nan.",
            RuntimeWarning,
            stacklevel=2,
        )
    return LyapunovSpectrum(
        exponents=exponents,
        per_sequence=per_sequence,
        num_exponents=k,
        state_size=state_size,
        steps=steps,
        warmup=warmup,
        qr_interval=qr_interval,
        seed=seed,
        dtype=dtype,
        jacobian=mode,
        qr_method=qr_used,
        backend=keras.backend.backend(),
        num_qr=num_qr,
        seconds=time.perf_counter() - start,
    )


def _device_kind():
    try:
        devices = keras.distribution.list_devices()
    except Exception:  # noqa: BLE001
        return "cpu"
    return "gpu" if any("gpu" in d.lower() or "cuda" in d.lower() for d in devices) else "cpu"


def _call_checked(cell, x, states, structure, sizes):
    """Call the cell once eagerly (builds it) and turn failures into a clear error."""
    bounds = np.cumsum([0] + sizes)
    parts = [states[:, int(a):int(b)] for a, b in zip(bounds[:-1], bounds[1:])]
    packed = parts if isinstance(structure, (int, np.integer)) else keras.tree.pack_sequence_as(
        structure, parts
    )
    try:
        _, new_states = cell(x, packed, training=False)
    except Exception as error:  # noqa: BLE001
        raise ValueError(
            f"Cell {cell.name!r} ({type(cell).__name__}) could not be called on one step of "
            f"`inputs` (shape {x.shape}) with states of sizes {sizes}: {error}"
        ) from error
    got = [int(ops.shape(s)[-1]) for s in keras.tree.flatten(new_states)]
    if got != sizes:
        raise TypeError(
            f"Cell {cell.name!r} returned states of sizes {got}, but its state_size says {sizes}."
        )
