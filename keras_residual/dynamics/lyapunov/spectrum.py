"""`lyapunov_spectrum`: the QR (Benettin) algorithm along a batch of input-driven trajectories.

    s_0 = initial state;  Q_0 = first k columns of a seeded random orthogonal S x S matrix
    for t = 1..T:
        J_t = d s_t / d s_{t-1} at (s_{t-1}, x_t)
        Z   = J_t Q_{t-1}
        at t = warmup, every qr_interval steps and at t = T:
            Q_t, R_t = qr(Z) with diag(R_t) > 0; for t > warmup add log diag(R_t)
        otherwise Q_t = Z
        s_t = step(s_{t-1}, x_t)
    lambda_i = (sum of log R_ii) / (T - warmup)

The state vector is the concatenation of all the cell's states (LSTM: [h, c],
S = 2 * units). `J_t Q` comes from the cell's tangent map (`tangents`) when it
has one, else from forward-mode autodiff on the k columns of Q.
"""

import dataclasses
import math
import time
import warnings

import keras
import numpy as np
from keras import ops

from keras_residual import _validation as check
from keras_residual.dynamics.lyapunov import cells
from keras_residual.dynamics.lyapunov import loop
from keras_residual.dynamics.lyapunov import tangents as tangents_lib
from keras_residual.dynamics.lyapunov._backends import get_backend
from keras_residual.dynamics.lyapunov.carry import initial_carry
from keras_residual.dynamics.lyapunov.result import LyapunovSpectrum

DTYPES = ("float32", "float64")
JACOBIANS = ("auto", "analytic", "autodiff")
QR_METHODS = ("auto", "householder", "cholesky")
# The default interval, chosen by measurement (BENCHMARKS.md, "Lyapunov
# spectrum: the defaults a new user meets"): "auto" agreed with a QR every
# step to ~1e-5 at 2-18x its speed.
DEFAULT_QR_INTERVAL = "auto"


def check_settings(num_exponents=None, warmup=0, qr_interval=DEFAULT_QR_INTERVAL, seed=None,
                   dtype=None, jacobian="auto", qr_method="auto", steps=None, state_size=None,
                   history=None):
    """The validated settings of a spectrum, as a dict (shared by
    `lyapunov_spectrum`, `LyapunovExponents` and the callbacks).

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
    check.one_of("jacobian", jacobian, JACOBIANS)
    check.one_of("qr_method", qr_method, QR_METHODS)
    if dtype is not None:
        try:
            dtype = keras.backend.standardize_dtype(dtype)
        except Exception:  # noqa: BLE001 (reported below)
            pass
        check.one_of("dtype", dtype, DTYPES + (None,))
    if num_exponents is not None:
        if state_size is None:
            num_exponents = check.integer("num_exponents", num_exponents, minimum=1,
                                          allow_none=True)
        else:
            num_exponents = check.integer(
                "num_exponents", num_exponents, minimum=1, maximum=state_size,
                allowed=f"None or an integer in [1, state size = {state_size}]",
            )
    if history is not None:
        limit = None if steps is None else steps - warmup
        history = check.integer(
            "history", history, minimum=1, maximum=limit, allow_none=True,
            allowed="None or an integer number of steps >= 1"
            + ("" if limit is None else f" and <= timesteps - warmup = {limit}"),
        )
    return {"num_exponents": num_exponents, "warmup": warmup, "qr_interval": qr_interval,
            "seed": seed, "dtype": dtype, "jacobian": jacobian, "qr_method": qr_method,
            "history": history}


def check_inputs(name, inputs):
    """A non-empty numeric `(batch, timesteps, features)` NumPy array."""
    x = np.asarray(ops.convert_to_numpy(inputs)) if inputs is not None else None
    if x is not None and x.ndim == 2:
        raise ValueError(
            f"Argument `{name}` must have rank 3 (batch, timesteps, features); received "
            f"shape {x.shape} (rank 2). Add a feature axis: {name}[..., None]."
        )
    return check.array(name, inputs, ndim=3)


def device_kind():
    try:
        devices = keras.distribution.list_devices()
    except Exception:  # noqa: BLE001
        return "cpu"
    return "gpu" if any("gpu" in d.lower() or "cuda" in d.lower() for d in devices) else "cpu"


def lyapunov_spectrum(
    cell_or_layer,
    inputs,
    num_exponents=None,
    warmup=0,
    qr_interval=DEFAULT_QR_INTERVAL,
    initial_state=None,
    seed=None,
    dtype=None,
    progress=False,
    jacobian="auto",
    qr_method="auto",
    history=None,
):
    """Lyapunov spectrum of a recurrent cell driven by a batch of inputs.

    Runs the QR (Benettin) algorithm along each input sequence at once
    (batched Jacobian products and batched QR, in one compiled loop where the
    backend allows), with memory independent of the sequence length.
    Exponents are natural logs per time step. The computation uses the
    threads the backend is set to use (it never changes them).

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
        qr_interval: `"auto"` (default) or the steps between QR
            re-orthonormalisations (>= 1; 1 is the textbook algorithm). Any
            interval is exact in exact arithmetic, but between QRs the
            columns of Q grow apart as exp(t * (lambda_1 - lambda_k)), which
            costs accuracy in the smallest exponents. `"auto"` picks each
            interval from the rates measured at the previous QR, so that the
            columns grow apart by at most a factor e^6 between QRs
            (intervals at most double, up to 64 steps): many steps for a
            weakly coupled network, one for an LSTM.
        initial_state: `None` (zeros), an array `(batch, S)` or `(S,)` of
            the concatenated states, or a list with one array per state.
        seed: seed of the random orthogonal initial frame Q_0 (`None`
            means 0: results are deterministic).
        dtype: `"float32"`, `"float64"` (validation; the cell, and every
            cell nested in it, is copied to compute in float64) or `None`
            (the cell's compute dtype, float32 for mixed-precision cells).
        progress: whether to show a `keras.utils.Progbar`.
        jacobian: `"auto"` (the cell's tangent map when it has one, see
            `kr.dynamics.tangent_map`, else autodiff), `"analytic"` or
            `"autodiff"` (forward mode on the k columns of Q).
        qr_method: `"auto"`, `"householder"` or `"cholesky"` (CholeskyQR2
            from matrix products on column-scaled Z, with a Householder
            fallback for steps it cannot handle, e.g. every step of an LSTM's
            full spectrum). `"auto"`: Householder on CPUs (batched LAPACK is
            fast there) and for float64, CholeskyQR2 on GPUs with jax and
            torch (where batched small QRs are slow).
        history: `None`, or w, an integer number of steps: also record the
            local exponents of each window of w steps after the warm-up (a
            QR ends each window), in `result.per_sequence_history`
            `(batch, windows, k)` and their batch mean `result.history`
            `(windows, k)`, columns in the order of the exponents; the
            windows' mean weighted by their lengths is `result.exponents`.
            Memory O(batch * windows * k), only when asked.

    Returns:
        A `LyapunovSpectrum` with `exponents` (k,), `per_sequence`
        (batch, k), `max`, `kaplan_yorke_dimension`, `entropy_rate`, the
        spread over sequences (`std`, `stderr`, `confidence_interval()`),
        the history when asked, and the settings used. Non-finite exponents
        (a state that overflowed, a singular Jacobian) are returned as
        inf/nan with a `RuntimeWarning`.

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
    >>> spectrum = kr.dynamics.lyapunov_spectrum(layer, x, warmup=100, history=50)
    >>> np.allclose(spectrum.exponents, np.log(radii), atol=1e-3)
    True
    >>> abs(spectrum.max) < 1e-3  # the critical unit (radius 1)
    True
    >>> spectrum.history.shape, spectrum.std.shape  # 4 windows of 50 steps; spread
    ((4, 4), (4,))
    """
    start = time.perf_counter()
    progress = check.boolean("progress", progress)
    run = prepare_run(cell_or_layer, inputs, num_exponents, warmup, qr_interval, initial_state,
                      seed, dtype, jacobian, qr_method, history)
    sums, window_sums, num_qr = run.execute(progress)
    return run.result(sums, window_sums, num_qr, time.perf_counter() - start)


@dataclasses.dataclass
class Run:
    """A validated spectrum computation: the cell in its dtype, the inputs,
    the initial state and the settings (what `lyapunov_spectrum` runs)."""

    cell: object
    work_cell: object
    layout: cells.StateLayout
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
    history: int = None
    qr_dtype: str = "auto"

    @property
    def steps(self):
        return self.xs.shape[0]

    def chunks(self, progress):
        """The (start, stop) steps the loop runs between host reads: the
        warm-up, then one per history window (or, with a progress bar, about
        20 chunks); one chunk otherwise. Chunks compute exactly what one run
        does (the tests check the numbers are equal)."""
        steps = self.steps
        if self.history is not None:
            bounds = [0] + ([self.warmup] if self.warmup else [])
            bounds += list(range(self.warmup + self.history, steps, self.history)) + [steps]
        elif progress:
            bounds = list(range(0, steps, max(1, math.ceil(steps / 20)))) + [steps]
        else:
            bounds = [0, steps]
        return list(zip(bounds[:-1], bounds[1:]))

    def execute(self, progress=False):
        """Run the loop: (sums of log R_ii (batch, k), per-window sums
        (batch, windows, k) or None, number of QRs)."""
        with loop.compute_scope(self.backend, self.dtype, self.qr_dtype):
            carry = initial_carry(ops.convert_to_tensor(self.h0, dtype=self.dtype), self.k,
                                  self.seed, self.dtype, self.qr_dtype)
            run = loop.runner(self.work_cell, self.layout, self.mode, self.qr_method,
                              self.qr_interval, self.backend, self.qr_dtype, self.history)
            xs = ops.convert_to_tensor(np.ascontiguousarray(self.xs), dtype=self.dtype)
            bar = keras.utils.Progbar(self.steps, unit_name="step") if progress else None
            windows, previous = [], None
            for start, stop in self.chunks(progress):
                carry = run(carry, xs[start:stop], start, self.warmup, self.steps)
                if self.history is not None and stop > self.warmup:
                    sums = _numpy_sums(carry)
                    windows.append(sums if previous is None else sums - previous)
                    previous = sums
                if bar is not None:
                    bar.update(stop)
            num_qr = int(ops.convert_to_numpy(carry.num_qr))
            sums = _numpy_sums(carry)
        return sums, (np.stack(windows, axis=1) if windows else None), num_qr

    def result(self, sums, window_sums, num_qr, seconds):
        """The `LyapunovSpectrum` of the accumulated logs (warning when not finite)."""
        steps, batch = self.steps, self.xs.shape[1]
        with np.errstate(invalid="ignore", over="ignore"):
            order = np.argsort(-sums / (steps - self.warmup), axis=-1, kind="stable")
            per_sequence = np.take_along_axis(sums, order, axis=-1) / (steps - self.warmup)
            exponents = np.mean(per_sequence, axis=0)
            history = lengths = None
            if window_sums is not None:
                lengths = np.diff([b for b in range(self.warmup, steps, self.history)] + [steps])
                history = np.take_along_axis(window_sums, order[:, None, :], axis=-1)
                history = history / lengths[None, :, None]
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
            exponents=exponents, per_sequence=per_sequence, num_exponents=self.k,
            state_size=self.layout.size, steps=steps, warmup=self.warmup,
            qr_interval=self.qr_interval, seed=self.seed, dtype=self.dtype, jacobian=self.mode,
            qr_method=self.qr_method, backend=keras.backend.backend(), num_qr=num_qr,
            seconds=seconds, per_sequence_history=history, window_steps=lengths,
        )


def _numpy_sums(carry):
    return np.asarray(ops.convert_to_numpy(carry.sums), dtype="float64")


@dataclasses.dataclass
class Prepared:
    """A cell ready to be stepped on validated inputs (what `prepare`
    returns): the cell, its working copy in `dtype`, the state layout, the
    time-major inputs (reversed for a `go_backwards` layer), s_0, the
    Jacobian mode and the backend module."""

    cell: object
    work_cell: object
    layout: cells.StateLayout
    xs: np.ndarray
    h0: np.ndarray
    dtype: str
    mode: str
    backend: object


def prepare(cell_or_layer, inputs, initial_state=None, dtype=None, jacobian="auto", k=None):
    """Resolve, check and build what every estimate of the engine steps:
    a `Prepared`. `k` tangent vectors check the tangent map once."""
    backend = get_backend()
    cell, go_backwards = cells.resolve_cell(cell_or_layer)
    x = check_inputs("inputs", inputs)
    layout = cells.StateLayout(cell)
    if dtype is None:
        dtype = cell.compute_dtype if cell.compute_dtype in DTYPES else "float32"
    with loop.compute_scope(backend, dtype):
        h0 = cells.initial_states(initial_state, x.shape[0], layout, dtype)
        work_cell = cells.working_cell(cell, x[:, 0], h0, layout, dtype)
    has_tangent = tangents_lib.tangent_map(work_cell) is not None
    if jacobian == "analytic" and not has_tangent:
        raise ValueError(
            f"Argument `jacobian` is 'analytic' but cell {cell.name!r} "
            f"({type(cell).__name__}) has no tangent map (see kr.dynamics.tangent_map: "
            "WCRNNCell and Keras' SimpleRNNCell, GRUCell, LSTMCell and StackedRNNCells of "
            "them have one, with tanh, sigmoid, relu or linear activations); use "
            "jacobian='auto' or 'autodiff'."
        )
    mode = jacobian if jacobian != "auto" else ("analytic" if has_tangent else "autodiff")
    if mode == "analytic" and k is not None:
        with loop.compute_scope(backend, dtype):
            cells.check_tangent(work_cell, x[:1, 0].astype(dtype), h0[:1], layout, k)
    xs = np.swapaxes(x, 0, 1).astype(dtype)
    if go_backwards:
        xs = xs[::-1]
    return Prepared(cell=cell, work_cell=work_cell, layout=layout, xs=xs, h0=h0, dtype=dtype,
                    mode=mode, backend=backend)


def prepare_run(cell_or_layer, inputs, num_exponents=None, warmup=0,
                qr_interval=DEFAULT_QR_INTERVAL, initial_state=None, seed=None, dtype=None,
                jacobian="auto", qr_method="auto", history=None):
    """Validate the arguments of `lyapunov_spectrum`, build the cell (and its
    copy in `dtype`) and choose the tangent and the QR: a `Run`."""
    cell, _ = cells.resolve_cell(cell_or_layer)
    x = check_inputs("inputs", inputs)
    layout = cells.StateLayout(cell)
    settings = check_settings(num_exponents, warmup, qr_interval, seed, dtype, jacobian,
                              qr_method, steps=x.shape[1], state_size=layout.size,
                              history=history)
    k = settings["num_exponents"] or layout.size
    ready = prepare(cell_or_layer, x, initial_state, settings["dtype"], settings["jacobian"], k)
    qr_method = settings["qr_method"]
    if qr_method == "auto":
        qr_method = ready.backend.default_qr_method(ready.dtype, device_kind())
    return Run(cell=ready.cell, work_cell=ready.work_cell, layout=ready.layout, xs=ready.xs,
               h0=ready.h0, k=k, warmup=settings["warmup"],
               qr_interval=settings["qr_interval"], seed=settings["seed"], dtype=ready.dtype,
               mode=ready.mode, qr_method=qr_method, backend=ready.backend,
               history=settings["history"])
