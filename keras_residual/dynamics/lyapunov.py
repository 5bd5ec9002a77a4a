"""Lyapunov spectra of recurrent cells: the QR (Benettin) algorithm on any cell.

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

from keras_residual import _validation as check
from keras_residual._keras_compat import autocast_off
from keras_residual._keras_compat import float64_ops
from keras_residual.dynamics import _lyapunov_backends
from keras_residual.dynamics import tangents as tangents_lib

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
    lam = check.array("exponents", exponents).astype("float64").ravel()
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

    def summary(self):
        """The figures the callbacks log: `{"max", "mean", "ky_dim"}` (floats)."""
        return {"max": self.max, "mean": self.mean, "ky_dim": self.kaplan_yorke_dimension}

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
    >>> np.round(spectrum.exponents, 1).tolist()  # Henon: 0.42 and -1.62
    [0.4, -1.6]
    """

    def __init__(self, function, state_size, **kwargs):
        if not callable(function):
            raise TypeError(
                f"Argument `function` of MapCell must be callable (state, inputs) -> "
                f"state; received function={function!r}."
            )
        state_size = check.positive_int("state_size", state_size)
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


def check_settings(
    num_exponents=None,
    warmup=0,
    qr_interval=1,
    seed=None,
    dtype=None,
    jacobian="auto",
    qr_method="auto",
    steps=None,
    state_size=None,
):
    """The validated settings of a spectrum, as a dict (shared by
    `lyapunov_spectrum` and `LyapunovCallback`).

    `steps` and `state_size`, when known, bound `warmup` and
    `num_exponents`. `seed=None` becomes 0 (results are deterministic);
    `dtype` is standardized (`None` stays `None`: the cell's dtype).
    """
    if steps is None:
        warmup = check.integer("warmup", warmup, minimum=0)
    else:
        warmup = check.integer(
            "warmup", warmup, minimum=0, maximum=steps - 1,
            allowed=f"an integer in [0, timesteps - 1 = {steps - 1}]",
        )
    if not (isinstance(qr_interval, str) and qr_interval == "auto"):
        qr_interval = check.integer(
            "qr_interval", qr_interval, minimum=1, allowed='an integer >= 1 or "auto"'
        )
    seed = 0 if seed is None else check.seed("seed", seed)
    check.one_of("jacobian", jacobian, _JACOBIANS)
    check.one_of("qr_method", qr_method, _QR_METHODS)
    if dtype is not None:
        try:
            dtype = keras.backend.standardize_dtype(dtype)
        except Exception:  # noqa: BLE001 (reported below)
            pass
        check.one_of("dtype", dtype, _DTYPES + (None,))
    if num_exponents is not None:
        if state_size is None:
            num_exponents = check.integer("num_exponents", num_exponents, minimum=1, allow_none=True)
        else:
            num_exponents = check.integer(
                "num_exponents", num_exponents, minimum=1, maximum=state_size,
                allowed=f"None or an integer in [1, state size = {state_size}]",
            )
    return {
        "num_exponents": num_exponents,
        "warmup": warmup,
        "qr_interval": qr_interval,
        "seed": seed,
        "dtype": dtype,
        "jacobian": jacobian,
        "qr_method": qr_method,
    }


def check_inputs(name, inputs):
    """A non-empty numeric `(batch, timesteps, features)` NumPy array."""
    x = np.asarray(ops.convert_to_numpy(inputs)) if inputs is not None else None
    if x is not None and x.ndim == 2:
        raise ValueError(
            f"Argument `{name}` must have rank 3 (batch, timesteps, features); received "
            f"shape {x.shape} (rank 2). Add a feature axis: {name}[..., None]."
        )
    return check.array(name, inputs, ndim=3)


def resolve_cell(cell_or_layer):
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


def state_sizes(cell):
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


def _is_float(dtype):
    return "float" in keras.backend.standardize_dtype(dtype)


def _float_dtypes(layer):
    """The dtypes the layer's float weights hold. Read from the values
    outside any autocast scope: a variable's `dtype` reports the scope's
    dtype inside one, and the default float dtype inside Keras'
    `AutocastScope(None)`."""
    with autocast_off():
        dtypes = {keras.backend.standardize_dtype(v.value.dtype) for v in layer.weights}
    return {d for d in dtypes if _is_float(d)}


def _config_in_dtype(config, dtype):
    """A layer config with `dtype` for the layer and for every layer nested
    in it (a `StackedRNNCells`' cells, say: each keeps its own dtype policy
    in its serialized config)."""
    if isinstance(config, (list, tuple)):
        return type(config)(_config_in_dtype(c, dtype) for c in config)
    if not isinstance(config, dict):
        return config
    config = {key: _config_in_dtype(value, dtype) for key, value in config.items()}
    inner = config.get("config")
    if "class_name" in config and isinstance(inner, dict) and "dtype" in inner:
        inner["dtype"] = dtype
    return config


def cell_in_dtype(cell, dtype):
    """The cell itself when it computes in `dtype`, else a copy that does
    (built on first use by the caller; cached per cell and dtype), its
    nested cells included.

    Raises:
        TypeError: the cell cannot be re-created from its config in `dtype`.
    """
    if cell.compute_dtype == dtype and _float_dtypes(cell) <= {dtype}:
        return cell
    clones = _CLONES.setdefault(cell, {})
    clone = clones.get(dtype)
    if clone is None:
        try:
            config = _config_in_dtype(cell.get_config(), dtype)
            config["dtype"] = dtype
            clone = cell.__class__.from_config(config)
        except Exception as error:  # noqa: BLE001 (user cells may fail in any way)
            raise TypeError(
                f"Cannot compute the exponents of cell {cell.name!r} in {dtype}: it could not "
                f"be re-created from its config with dtype={dtype!r} ({error}). Give the cell "
                f"a complete get_config, build it with dtype={dtype!r}, or pass dtype=None."
            ) from error
        clones[dtype] = clone
    return clone


def check_clone(cell, clone, dtype):
    """After the clone is built: every float weight of it (nested cells
    included) is in `dtype`, one per weight of the cell, same shapes."""
    if clone is cell:
        return
    shapes = [tuple(v.shape) for v in cell.weights]
    if shapes != [tuple(v.shape) for v in clone.weights] or not _float_dtypes(clone) <= {dtype}:
        raise TypeError(
            f"Cannot compute the exponents of cell {cell.name!r} in {dtype}: its copy from "
            f"get_config (with dtype={dtype!r} for it and every nested layer) has float "
            f"weights of dtypes {sorted(_float_dtypes(clone))} and variable shapes "
            f"{[tuple(v.shape) for v in clone.weights]} where the cell has {shapes}. Build "
            f"the cell with dtype={dtype!r}, or pass dtype=None."
        )


def clone_mapping(cell, clone, dtype):
    """`[(clone weight, the cell's weight's current value in the clone's
    dtype)]` (weights, in their order of creation, which a copy from the
    config repeats; a seed generator's state is no weight, and the steps
    run in inference mode): run under
    `keras.StatelessScope(state_mapping=...)`, the clone computes with the
    cell's weights, and gradients reach the cell's variables."""
    with autocast_off():
        values = [v.value for v in cell.weights]
    return [
        (mine, ops.cast(value, dtype) if _is_float(value.dtype) else value)
        for mine, value in zip(clone.weights, values)
    ]


# --------------------------------------------------------------------------
# The loop body (keras.ops)
# --------------------------------------------------------------------------

_RUNNERS = weakref.WeakKeyDictionary()

# qr_interval="auto": after each QR the next interval is chosen so that, at the
# rates just measured, the columns of Q grow apart by at most exp(spread)
# (the relative accuracy of the smallest R_jj degrades as eps * exp(spread):
# ~2.4e-5 per QR in float32 at the limit e^6 ~ 400) and no column grows or
# shrinks by more than exp(growth) (overflow), within [1, _AUTO_MAX_INTERVAL] steps and at most twice the interval just measured:
# a rate measured over a short or transient stretch can be far too low (with
# an orthogonal recurrent matrix and h_0 = 0 the first step's spread is ~0),
# and a too-long interval loses the tail before the next QR can see it. The
# float32 limits serve float64 too: on torch and jax, Keras computes some
# float64 ops of a cell in float32 (keras-team/keras#23704), so a "float64"
# tangent may carry float32 errors.
_AUTO_LIMITS = {"spread": 6.0, "growth": 20.0}
_AUTO_MAX_INTERVAL = 64

# The QR precision of a float32 run (qr_dtype "auto") follows the same
# limit: float32 when the spread predicted for the QR (the rate of the last
# QR times the steps since) is at most _AUTO_LIMITS["spread"], where a float32
# Householder QR gives the smallest R_jj to a relative ~eps32 * exp(spread);
# float64 otherwise (an LSTM's full spectrum spans ~10 per step, and a float32
# QR biases its tail by ~1e-3) and for the first QR, before a rate is known.


def _when(pred, true_fn, false_fn):
    """`true_fn()` if `pred` else `false_fn()`: Python control flow in an
    eager loop (pred a Python bool), `ops.cond` in a traced one."""
    if isinstance(pred, (bool, np.bool_)):
        return true_fn() if pred else false_fn()
    return ops.cond(pred, true_fn, false_fn)


def _choose(pred, a, b):
    """`a` if `pred` else `b`, elementwise for a traced `pred`."""
    if isinstance(pred, (bool, np.bool_)):
        return a if pred else b
    return ops.where(pred, a, b)


def _qr_due(t, next_qr, warmup, steps, qr_interval):
    """The QR schedule: whether step t ends with a QR. Python operators, so
    the same code serves Python integers (the eager loop) and tensors."""
    due = (t >= next_qr) if qr_interval == "auto" else (t % qr_interval == 0)
    return due | (t == warmup) | (t == steps)


def _spread_rate(log_d, elapsed):
    """Per step, the largest (over the batch) spread max_j - min_j of the
    log R_jj of a QR taken `elapsed` steps after the last one (0 for one
    column; NaN stays NaN)."""
    elapsed = ops.cast(elapsed, log_d.dtype)
    return ops.max(ops.max(log_d, axis=-1) - ops.min(log_d, axis=-1)) / elapsed


def _next_interval(log_d, elapsed, spread):
    """Steps until the next QR for qr_interval="auto": the columns of Q may
    grow apart by at most exp(spread limit) and any column by exp(growth
    limit), at the rates measured over the last `elapsed` steps (`spread`:
    `_spread_rate`), and the interval at most doubles."""
    dtype = log_d.dtype
    growth = ops.max(ops.abs(log_d)) / ops.cast(elapsed, dtype)
    tiny = ops.cast(1e-12, dtype)
    q = ops.minimum(
        _AUTO_LIMITS["spread"] / ops.maximum(spread, tiny),
        _AUTO_LIMITS["growth"] / ops.maximum(growth, tiny),
    )
    q = ops.minimum(q, ops.cast(2 * elapsed, dtype))
    q = ops.where(ops.isfinite(q), ops.clip(ops.floor(q), 1, _AUTO_MAX_INTERVAL), 1)
    return ops.cast(q, "int32")


def step_function(
    cell, structure, sizes, mode, qr_method, qr_interval, backend, qr_dtype, state_gradient=True
):
    """`body(carry, x_t, t, warmup, steps) -> carry`, one step of the loop
    (what `lyapunov_spectrum` compiles, and `kr.layers.LyapunovExponents`
    scans differentiably; the carry starts as `initial_carry(...)`).

    The carry is (s, Q, sum of log R_ii, its compensation, spread rate of
    the last QR (`_spread_rate`), step of the last QR, step of the next QR,
    number of QRs). `qr_dtype` is the QRs' dtype, or "auto": for a float32
    cell, float32 when the spread rate predicts the columns of Z within
    exp(_AUTO_LIMITS["spread"]) of each other, float64 otherwise. `J_t Q`
    comes from the cell's tangent map (`kr.dynamics.tangents`) in mode
    "analytic", else from the backend's forward-mode autodiff. The logs are summed with Neumaier's
    compensation, so a long run loses no digits to the running sum. On eager
    backends (torch) t and the three counters are Python integers; the same
    code then runs as Python control flow.
    """
    cell_ref = weakref.ref(cell)
    dtype = cell.compute_dtype
    bounds = np.cumsum([0] + sizes)
    tangent = tangents_lib.tangent_map(cell) if mode == "analytic" else None

    def split(s):
        return [s[:, int(a):int(b)] for a, b in zip(bounds[:-1], bounds[1:])]

    def pack(parts):
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
        _, new_states = cell_ref().call(x, pack(split(s)), **kwargs)
        return flatten(new_states)

    def propagate(s, Q, x):
        """(s_t, J_t Q)."""
        if tangent is not None:
            new_states, Z = tangent(x, split(s), Q)
            return flatten(new_states), Z
        s_new, Z = backend.tangent_map(lambda v: step_state(v, x), s, Q)
        return s_new, ops.cast(Z, dtype)

    # "auto": float32 runs take each QR in float32 when the columns are
    # predicted to lie close enough together for it, else in float64.
    adaptive = qr_dtype == "auto" and dtype != "float64"
    sum_dtype = accumulator_dtype(qr_dtype)

    def qr_in(precision, Z):
        Q_qr, log_d = backend.qr(ops.cast(Z, precision), qr_method)
        return ops.cast(Q_qr, dtype), ops.cast(log_d, sum_dtype)

    def body(carry, x, t, warmup, steps):
        s, Q, acc, comp, rate, last_qr, next_qr, num_qr = carry
        if not state_gradient:
            s = ops.stop_gradient(s)
        s_new, Z = propagate(s, Q, x)
        do_qr = True if qr_interval == 1 else _qr_due(t, next_qr, warmup, steps, qr_interval)

        def with_qr():
            elapsed = _choose(t - last_qr > 1, t - last_qr, 1)
            if adaptive:  # the QR precision rule above _when
                narrow = rate * ops.cast(elapsed, rate.dtype) <= _AUTO_LIMITS["spread"]
                Q_qr, log_d = _when(
                    narrow, lambda: qr_in(dtype, Z), lambda: qr_in("float64", Z)
                )
            else:
                Q_qr, log_d = qr_in(sum_dtype, Z)
            new_acc, new_comp = _compensated_sum(
                acc, comp, _choose(t > warmup, log_d, ops.zeros_like(log_d))
            )
            spread = _spread_rate(log_d, elapsed)
            new_rate = ops.cast(spread, rate.dtype)
            if qr_interval == "auto":
                interval = _next_interval(log_d, elapsed, spread)
                if isinstance(t, int):  # the eager loop schedules with Python integers
                    interval = int(ops.convert_to_numpy(interval))
                new_next = t + interval
            else:
                new_next = next_qr
            return Q_qr, new_acc, new_comp, new_rate, new_next

        def without_qr():
            return Z, acc, comp, rate, next_qr

        Q_new, acc, comp, rate, next_qr = _when(do_qr, with_qr, without_qr)
        last_qr = _choose(do_qr, t, last_qr)
        num_qr = num_qr + (int(do_qr) if isinstance(do_qr, bool) else ops.cast(do_qr, "int32"))
        return (ops.cast(s_new, dtype), Q_new, acc, comp, rate, last_qr, next_qr, num_qr)

    return body


def accumulator_dtype(qr_dtype):
    """The dtype of the summed logs (and of the QRs, unless `qr_dtype` is
    "auto"): `qr_dtype`, float64 for "auto"."""
    return "float64" if qr_dtype == "auto" else qr_dtype


def initial_carry(h0, state_size, k, seed, dtype, qr_dtype):
    """The loop's first carry for initial states `h0` (batch, S): Q_0 the
    seeded frame, zero sums, no QR yet (spread rate unknown: +inf)."""
    batch = ops.shape(h0)[0]
    frame = ops.convert_to_tensor(_initial_frame(state_size, k, seed, dtype), dtype=dtype)
    sum_dtype = accumulator_dtype(qr_dtype)
    return (
        h0,
        ops.broadcast_to(frame[None], (batch, state_size, k)),
        ops.zeros((batch, k), dtype=sum_dtype),  # sum of log R_ii
        ops.zeros((batch, k), dtype=sum_dtype),  # its compensation
        ops.convert_to_tensor(np.inf, dtype="float32"),  # spread rate at the last QR
        ops.convert_to_tensor(0, dtype="int32"),  # step of the last QR
        ops.convert_to_tensor(1, dtype="int32"),  # step of the next QR ("auto")
        ops.convert_to_tensor(0, dtype="int32"),  # number of QRs
    )


def _compensated_sum(total, compensation, value):
    """Neumaier's summation: `total + value`, with the low-order bits the
    addition drops collected in `compensation` (the sum is total + compensation)."""
    new = total + value
    big = ops.abs(total) >= ops.abs(value)
    lost = ops.where(big, (total - new) + value, (value - new) + total)
    # inf/nan stay as they are (inf - inf would make the compensation NaN).
    lost = ops.where(ops.isfinite(new), lost, ops.zeros_like(lost))
    return new, compensation + lost


def _runner(cell, structure, sizes, mode, qr_method, qr_interval, backend, qr_dtype):
    runners = _RUNNERS.setdefault(cell, {})
    key = (keras.backend.backend(), mode, qr_method, qr_interval, qr_dtype)
    if key not in runners:
        body = step_function(cell, structure, sizes, mode, qr_method, qr_interval, backend, qr_dtype)
        # Few QRs are expected with a fixed interval > 1, and with "auto" on a
        # weakly coupled WCRNN (its exponents lie close together).
        rare_qr = qr_interval != 1 and (qr_interval != "auto" or _weakly_coupled(cell))
        runners[key] = backend.make_runner(body, cell.variables, rare_qr=rare_qr)
    return runners[key]


def _weakly_coupled(cell):
    coupling = getattr(cell, "coupling", None)
    return coupling is not None and coupling < 0.5


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

    Runs the QR (Benettin) algorithm along each input sequence
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
            most a factor e^6 between QRs; intervals at most double, up to
            64 steps): many steps for a weakly coupled network, one for an
            LSTM.
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
    progress = check.boolean("progress", progress)
    run = _prepare_run(
        cell_or_layer, inputs, num_exponents, warmup, qr_interval, initial_state, seed, dtype,
        jacobian, qr_method,
    )
    acc, num_qr = run.execute(progress)
    return run.result(acc, num_qr, time.perf_counter() - start)


@dataclasses.dataclass
class _Run:
    """A validated spectrum computation: the cell in its dtype, the inputs,
    the initial carry and the settings (what `lyapunov_spectrum` runs)."""

    cell: object
    work_cell: object
    structure: object
    sizes: list
    xs: np.ndarray
    h0: np.ndarray
    k: int
    warmup: int
    qr_interval: object
    seed: int
    dtype: str
    mode: str
    qr_method: str
    backend: object
    qr_dtype: str = "auto"

    @property
    def steps(self):
        return self.xs.shape[0]

    @property
    def batch(self):
        return self.xs.shape[1]

    def execute(self, progress=False):
        """Run the loop; returns (sum of log R_ii (batch, k), number of QRs)."""
        dtype, backend = self.dtype, self.backend
        state_size = sum(self.sizes)
        with compute_scope(backend, dtype, self.qr_dtype):
            carry = initial_carry(
                ops.convert_to_tensor(self.h0, dtype=dtype), state_size, self.k, self.seed,
                dtype, self.qr_dtype,
            )
            run = _runner(
                self.work_cell, self.structure, self.sizes, self.mode, self.qr_method,
                self.qr_interval, backend, self.qr_dtype,
            )
            xs = ops.convert_to_tensor(np.ascontiguousarray(self.xs), dtype=dtype)
            steps = self.steps
            if progress:
                # Chunks of the same loop: each step computes exactly what it
                # computes in one run (tests check the numbers are equal).
                chunk = max(1, math.ceil(steps / 20))
                bar = keras.utils.Progbar(steps, unit_name="step")
                for t0 in range(0, steps, chunk):
                    carry = run(carry, xs[t0:t0 + chunk], t0, self.warmup, steps)
                    bar.update(min(steps, t0 + chunk))
            else:
                carry = run(carry, xs, 0, self.warmup, steps)
            acc = np.asarray(ops.convert_to_numpy(carry[2]), dtype="float64")
            acc = acc + np.asarray(ops.convert_to_numpy(carry[3]), dtype="float64")
            num_qr = int(ops.convert_to_numpy(carry[-1]))
        return acc, num_qr

    def result(self, acc, num_qr, seconds):
        """The `LyapunovSpectrum` of the accumulated logs (warning when not finite)."""
        steps, batch = self.steps, self.batch
        with np.errstate(invalid="ignore", over="ignore"):
            per_sequence = -np.sort(-(acc / (steps - self.warmup)), axis=-1)
            exponents = np.mean(per_sequence, axis=0)
        if not np.all(np.isfinite(per_sequence)):
            bad = int(np.sum(~np.all(np.isfinite(per_sequence), axis=-1)))
            warnings.warn(
                f"Lyapunov spectrum of cell {self.cell.name!r}: {bad} of {batch} trajectories "
                "gave non-finite exponents (the state overflowed, or the Jacobian became "
                "singular); they are returned as inf/nan.",
                RuntimeWarning,
                stacklevel=3,
            )
        return LyapunovSpectrum(
            exponents=exponents,
            per_sequence=per_sequence,
            num_exponents=self.k,
            state_size=sum(self.sizes),
            steps=steps,
            warmup=self.warmup,
            qr_interval=self.qr_interval,
            seed=self.seed,
            dtype=self.dtype,
            jacobian=self.mode,
            qr_method=self.qr_method,
            backend=keras.backend.backend(),
            num_qr=num_qr,
            seconds=seconds,
        )


def _prepare_run(
    cell_or_layer, inputs, num_exponents=None, warmup=0, qr_interval=1, initial_state=None,
    seed=None, dtype=None, jacobian="auto", qr_method="auto",
):
    """Validate the arguments of `lyapunov_spectrum`, build the cell (and its
    copy in `dtype`) and choose the tangent and the QR: a `_Run`."""
    backend = _lyapunov_backends.get_backend()
    cell, go_backwards = resolve_cell(cell_or_layer)
    x = check_inputs("inputs", inputs)
    batch, steps = x.shape[0], x.shape[1]
    structure, sizes = state_sizes(cell)
    state_size = sum(sizes)
    settings = check_settings(
        num_exponents, warmup, qr_interval, seed, dtype, jacobian, qr_method,
        steps=steps, state_size=state_size,
    )
    dtype = settings["dtype"]
    if dtype is None:
        dtype = cell.compute_dtype if cell.compute_dtype in _DTYPES else "float32"

    with compute_scope(backend, dtype):
        h0 = _initial_states(initial_state, batch, sizes, dtype)
        if not cell.built:
            call_checked(cell, x[:, 0].astype("float32"), h0.astype("float32"), structure, sizes)
        work_cell = cell_in_dtype(cell, dtype)
        if work_cell is not cell:
            if not work_cell.built:
                call_checked(work_cell, x[:, 0].astype(dtype), h0, structure, sizes)
            check_clone(cell, work_cell, dtype)
            work_cell.set_weights(
                [np.asarray(w, dtype=v.dtype) for w, v in zip(cell.get_weights(), work_cell.weights)]
            )
        call_checked(work_cell, x[:, 0].astype(dtype), h0, structure, sizes)

    has_tangent = tangents_lib.tangent_map(work_cell) is not None
    if settings["jacobian"] == "analytic" and not has_tangent:
        raise ValueError(
            f"Argument `jacobian` is 'analytic' but cell {cell.name!r} "
            f"({type(cell).__name__}) has no tangent map (see kr.dynamics.tangents: "
            "WCRNNCell and Keras' SimpleRNNCell, GRUCell, LSTMCell and StackedRNNCells of "
            "them have one, with tanh, sigmoid, relu or linear activations); use "
            "jacobian='auto' or 'autodiff'."
        )
    if settings["jacobian"] == "auto":
        mode = "analytic" if has_tangent else "autodiff"
    else:
        mode = settings["jacobian"]
    k = settings["num_exponents"] or state_size
    if mode == "analytic":
        with compute_scope(backend, dtype):
            check_tangent(work_cell, x[:1, 0].astype(dtype), h0[:1], sizes, k)
    qr_method = settings["qr_method"]
    if qr_method == "auto":
        qr_method = backend.default_qr_method(dtype, _device_kind())

    xs = np.swapaxes(x, 0, 1).astype(dtype)
    if go_backwards:
        xs = xs[::-1]
    return _Run(
        cell=cell, work_cell=work_cell, structure=structure, sizes=sizes, xs=xs, h0=h0,
        k=k, warmup=settings["warmup"],
        qr_interval=settings["qr_interval"], seed=settings["seed"], dtype=dtype, mode=mode,
        qr_method=qr_method, backend=backend,
    )


@contextlib.contextmanager
def compute_scope(backend, dtype, qr_dtype=None):
    """The backend's scope for a computation in `dtype` with QRs in
    `qr_dtype` (JAX's x64 mode when either is float64, single-threaded small
    linear algebra on CPUs), and for float64 Keras ops that stay float64 on
    every backend (`_keras_compat.float64_ops`)."""
    qr_dtype = accumulator_dtype(qr_dtype) if qr_dtype is not None else None
    wide = "float64" if "float64" in (dtype, qr_dtype) else dtype
    with backend.compute_scope(wide):
        with float64_ops() if wide == "float64" else contextlib.nullcontext():
            yield


def _device_kind():
    try:
        devices = keras.distribution.list_devices()
    except Exception:  # noqa: BLE001
        return "cpu"
    return "gpu" if any("gpu" in d.lower() or "cuda" in d.lower() for d in devices) else "cpu"


def check_tangent(cell, x, states, sizes, k):
    """Run the cell's tangent map once on one step (`x` (batch, features),
    concatenated `states` (batch, S)) with `k` tangent vectors and check its
    output (`tangents.check_output`)."""
    bounds = np.cumsum([0] + sizes)
    parts = [ops.convert_to_tensor(states[:, int(a):int(b)]) for a, b in zip(bounds[:-1], bounds[1:])]
    dtype = keras.backend.standardize_dtype(states.dtype)
    frame = _initial_frame(sum(sizes), k, 0, dtype)
    Q = ops.convert_to_tensor(np.broadcast_to(frame, (states.shape[0],) + frame.shape), dtype=dtype)
    output = tangents_lib.tangent_map(cell)(ops.convert_to_tensor(x), parts, Q)
    tangents_lib.check_output(cell, output, states.shape[0], sizes, k)


def call_checked(cell, x, states, structure, sizes):
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
