"""A plain float64 NumPy implementation of the Lyapunov algorithm.

The reference `lyapunov_spectrum` is validated against (tests) and timed
against (benchmarks/lyapunov_speed.py): the same algorithm, the same initial
frame, batched over trajectories with stacked `numpy.linalg.qr`, and the
step Jacobians written out by hand for `WCRNNCell`, `SimpleRNNCell` and
`LSTMCell` (or given by the caller as a function).
"""

import time

import keras
import numpy as np

from keras_residual import _activations
from keras_residual.dynamics import _lyapunov_backends
from keras_residual.dynamics import lyapunov as lyapunov_lib

_FUNCTIONS = {
    "tanh": (np.tanh, lambda a, y: 1.0 - y * y),
    "sigmoid": (lambda a: 0.5 * (1.0 + np.tanh(0.5 * a)), lambda a, y: y * (1.0 - y)),
    "relu": (lambda a: np.maximum(a, 0.0), lambda a, y: (a > 0).astype(a.dtype)),
    "linear": (lambda a: a, lambda a, y: np.ones_like(a)),
}


def _activation(activation, what):
    name = _activations.name_of(activation)
    if name not in _FUNCTIONS:
        raise TypeError(
            f"The NumPy reference knows the activations {sorted(_FUNCTIONS)}; the cell's "
            f"{what} is {name!r}."
        )
    return _FUNCTIONS[name]


def _numpy(variable):
    return np.asarray(keras.ops.convert_to_numpy(variable), dtype="float64")


def _residual_matrix(residual):
    """R in float64, from the residual's linear form read in float64 (as the
    float64 mode of `lyapunov_spectrum` reads it), not from the float32
    `matrix()`."""
    with _lyapunov_backends.get_backend().compute_scope("float64"):
        form = [form if isinstance(form, str) else _numpy(form)
                for form in residual.linear_form("float64")]
    n = residual.units
    kind = form[0]
    if kind == "identity":
        return np.eye(n)
    if kind == "diagonal":
        return np.eye(n) * np.broadcast_to(form[1], (n,))[:, None]
    if kind == "rotation":
        R = np.diag(form[1])
        R[np.arange(n), np.arange(n) ^ 1] = form[2]
        return R
    if kind == "dense":
        return form[1].T
    raise TypeError(f"Unknown linear form {kind!r} of residual {residual!r}.")


def _wcrnn_step(cell):
    U, W = _numpy(cell.kernel), _numpy(cell.recurrent_kernel)
    b = _numpy(cell.bias) if cell.bias is not None else 0.0
    act, dact = _activation(cell.activation, "activation")
    coupling = float(cell.coupling)
    residual = cell.residual
    if residual is None:
        rho = None
    elif residual.linear:
        rho = ("linear", _residual_matrix(residual))
    else:
        inner, dinner = _activation(residual.activation, "residual activation")
        rho = ("nonlinear", _residual_matrix(residual.base), inner, dinner)

    def step(h, x):
        a = x @ U + h @ W + b
        y = act(a)
        J = coupling * dact(a, y)[:, :, None] * W.T[None]
        h_new = coupling * y
        if rho is not None and rho[0] == "linear":
            h_new = h_new + h @ rho[1].T
            J = J + rho[1][None]
        elif rho is not None:
            _, R, inner_f, inner_d = rho
            p = inner_f(h)
            h_new = h_new + p @ R.T
            J = J + R[None] * inner_d(h, p)[:, None, :]
        return h_new, J

    return step


def _simple_rnn_step(cell):
    U, W = _numpy(cell.kernel), _numpy(cell.recurrent_kernel)
    b = _numpy(cell.bias) if cell.bias is not None else 0.0
    act, dact = _activation(cell.activation, "activation")

    def step(h, x):
        a = x @ U + h @ W + b
        y = act(a)
        return y, dact(a, y)[:, :, None] * W.T[None]

    return step


def _lstm_step(cell):
    n = cell.units
    U, W = _numpy(cell.kernel), _numpy(cell.recurrent_kernel)
    b = _numpy(cell.bias) if cell.use_bias else 0.0
    act, dact = _activation(cell.activation, "activation")
    ract, dract = _activation(cell.recurrent_activation, "recurrent_activation")
    W_i, W_f, W_c, W_o = (W[:, j * n:(j + 1) * n].T[None] for j in range(4))

    def step(s, x):
        h, c = s[:, :n], s[:, n:]
        z = x @ U + h @ W + b
        z_i, z_f, z_c, z_o = (z[:, j * n:(j + 1) * n] for j in range(4))
        i, f, o = ract(z_i), ract(z_f), ract(z_o)
        g = act(z_c)
        c_new = f * c + i * g
        tc = act(c_new)
        h_new = o * tc
        # d c_new / d h and d c_new / d c
        dc_dh = (
            (c * dract(z_f, f))[:, :, None] * W_f
            + (g * dract(z_i, i))[:, :, None] * W_i
            + (i * dact(z_c, g))[:, :, None] * W_c
        )
        dtc = o * dact(c_new, tc)
        dh_dh = (tc * dract(z_o, o))[:, :, None] * W_o + dtc[:, :, None] * dc_dh
        dh_dc = dtc * f
        batch = s.shape[0]
        J = np.zeros((batch, 2 * n, 2 * n))
        J[:, :n, :n] = dh_dh
        J[:, :n, n:] = dh_dc[:, :, None] * np.eye(n)[None]
        J[:, n:, :n] = dc_dh
        J[:, n:, n:] = f[:, :, None] * np.eye(n)[None]
        return np.concatenate([h_new, c_new], axis=-1), J

    return step


def numpy_step(cell_or_layer):
    """`step(h, x) -> (h_new, J)` in float64 NumPy for a built Keras cell.

    Supports `kr.layers.WCRNNCell` (any residual), `keras.layers.SimpleRNNCell`
    and `keras.layers.LSTMCell` (state `[h, c]`), with the activations tanh,
    sigmoid, relu and linear; or their `RNN` layers.

    Args:
        cell_or_layer: the cell or its RNN layer, built.

    Returns:
        A function of `h` (batch, S) and `x` (batch, features) returning the
        next state and the step Jacobian `J[b, i, j] = d h_new[i] / d h[j]`.
    """
    from keras_residual.layers.wcrnn_cell import WCRNNCell

    cell, _ = lyapunov_lib._resolve_cell(cell_or_layer)
    if not cell.built:
        raise ValueError(f"Cell {cell.name!r} must be built (call it or its layer once) first.")
    if isinstance(cell, WCRNNCell):
        return _wcrnn_step(cell)
    if isinstance(cell, keras.layers.LSTMCell):
        return _lstm_step(cell)
    if isinstance(cell, keras.layers.SimpleRNNCell):
        return _simple_rnn_step(cell)
    raise TypeError(
        f"The NumPy reference supports WCRNNCell, SimpleRNNCell and LSTMCell; received "
        f"{type(cell).__name__}. Pass a function step(h, x) -> (h_new, J) instead."
    )


def lyapunov_spectrum_numpy(
    cell_or_step,
    inputs,
    num_exponents=None,
    warmup=0,
    qr_interval=1,
    initial_state=None,
    seed=None,
    state_size=None,
):
    """Float64 NumPy reference of `kr.dynamics.lyapunov_spectrum`.

    Same algorithm and initial frame as `lyapunov_spectrum`, written with
    NumPy only (`J @ Q` with hand-written Jacobians, stacked
    `numpy.linalg.qr` over the batch); slow, for validation and timing.

    Args:
        cell_or_step: a built `WCRNNCell`, `SimpleRNNCell` or `LSTMCell`
            (or its layer), or a function `step(h, x) -> (h_new, J)` on
            float64 batches.
        inputs: `(batch, timesteps, features)` array.
        num_exponents, warmup, qr_interval, seed: as in `lyapunov_spectrum`.
        initial_state: `None` (zeros) or a `(batch, S)` / `(S,)` array.
        state_size: S; needed only with a step function and no
            `initial_state`.

    Returns:
        A `LyapunovSpectrum` (float64, `backend="numpy"`).

    Example:

    >>> reference = kr.dynamics.lyapunov_spectrum_numpy(layer, x)
    >>> fast = kr.dynamics.lyapunov_spectrum(layer, x)
    >>> np.abs(fast.exponents - reference.exponents).max() < 1e-3
    True
    """
    start = time.perf_counter()
    x = np.asarray(keras.ops.convert_to_numpy(inputs), dtype="float64")
    if x.ndim != 3:
        raise ValueError(
            "Argument `inputs` must have rank 3 (batch, timesteps, features); received "
            f"shape {x.shape}."
        )
    batch, steps = x.shape[:2]
    go_backwards = False
    if callable(cell_or_step) and not isinstance(cell_or_step, keras.layers.Layer):
        step = cell_or_step
        sizes = None
    else:
        step = numpy_step(cell_or_step)
        cell, go_backwards = lyapunov_lib._resolve_cell(cell_or_step)
        _, sizes = lyapunov_lib._state_sizes(cell)
        state_size = sum(sizes)
    if initial_state is None:
        if state_size is None:
            raise ValueError("With a step function, pass `state_size` or `initial_state`.")
        h = np.zeros((batch, state_size))
    else:
        h = np.array(np.broadcast_to(np.asarray(initial_state, dtype="float64"), (batch, np.shape(initial_state)[-1])))
        state_size = h.shape[-1]
    k = state_size if num_exponents is None else int(num_exponents)
    if not 1 <= k <= state_size:
        raise ValueError(f"Argument `num_exponents` must be in [1, {state_size}]; received {k}.")
    if not 0 <= warmup < steps:
        raise ValueError(f"Argument `warmup` must be in [0, {steps - 1}]; received {warmup}.")
    seed = 0 if seed is None else int(seed)
    if go_backwards:
        x = x[:, ::-1]
    Q = np.array(np.broadcast_to(lyapunov_lib._initial_frame(state_size, k, seed, "float64"), (batch, state_size, k)))
    acc = np.zeros((batch, k))
    num_qr = 0
    for t in range(1, steps + 1):
        h_new, J = step(h, x[:, t - 1])
        Z = J @ Q
        if t % qr_interval == 0 or t == warmup or t == steps:
            Q, R = np.linalg.qr(Z)
            num_qr += 1
            d = np.diagonal(R, axis1=-2, axis2=-1)
            Q = Q * np.where(d < 0, -1.0, 1.0)[:, None, :]
            if t > warmup:
                with np.errstate(divide="ignore"):
                    acc += np.log(np.abs(d))
        else:
            Q = Z
        h = h_new
    with np.errstate(invalid="ignore"):
        per_sequence = -np.sort(-(acc / (steps - warmup)), axis=-1)
        exponents = np.mean(per_sequence, axis=0)
    return lyapunov_lib.LyapunovSpectrum(
        exponents=exponents,
        per_sequence=per_sequence,
        num_exponents=k,
        state_size=state_size,
        steps=steps,
        warmup=warmup,
        qr_interval=qr_interval,
        seed=seed,
        dtype="float64",
        jacobian="analytic",
        qr_method="householder",
        backend="numpy",
        num_qr=num_qr,
        seconds=time.perf_counter() - start,
    )
