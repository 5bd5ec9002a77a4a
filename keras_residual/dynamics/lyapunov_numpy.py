"""A plain float64 NumPy implementation of the Lyapunov algorithm: the oracle.

The reference `lyapunov_spectrum` is validated against (tests) and timed
against (benchmarks/lyapunov_speed.py): the same algorithm and the same
definition of the initial frame, batched over trajectories with stacked
`numpy.linalg.qr`, and the step Jacobians written out by hand for
`WCRNNCell`, `SimpleRNNCell`, `GRUCell` and `LSTMCell` (or given by the
caller as a function). It shares no code with the engine
(`keras_residual.dynamics.lyapunov`) but the result type, so that an error
in one is not repeated in the other.
"""

import time

import keras
import numpy as np

from keras_residual import _activations
from keras_residual import _validation as check
from keras_residual.dynamics.lyapunov.result import LyapunovSpectrum

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
    """R in float64 NumPy from the residual's parameters (the reference does
    not go through the residual's forms or Keras ops: under jax and torch,
    Keras' float64 ops may round to float32, keras-team/keras#23704, which
    made this R float32-accurate and the reference of a chaotic net ~1e-3
    off after 120 steps)."""
    from keras_residual import residuals

    params = {name: _numpy(value) for name, value in residual._params.items()}
    n = residual.units
    if isinstance(residual, residuals.Identity):
        return np.eye(n)
    if isinstance(residual, residuals.Homogeneous):
        return float(params["radius"]) * np.eye(n)
    if isinstance(residual, residuals.Heterogeneous):
        return np.diag(params["radii"])
    if isinstance(residual, residuals.Rotational):
        R = np.zeros((n, n))
        for i, (r, phi) in enumerate(zip(params["radii"], params["angles"])):
            c, s = r * np.cos(phi), r * np.sin(phi)
            R[2 * i:2 * i + 2, 2 * i:2 * i + 2] = [[c, -s], [s, c]]
        return R
    if isinstance(residual, residuals.Dense):
        return params["kernel"].T  # stored in Keras' row convention, K = R^T
    raise TypeError(
        f"The NumPy reference knows the residuals Identity, Homogeneous, Heterogeneous, "
        f"Rotational and Dense (and Nonlinear of them); received {type(residual).__name__}."
    )


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


def _gru_step(cell):
    n = cell.units
    U, W = _numpy(cell.kernel), _numpy(cell.recurrent_kernel)
    act, dact = _activation(cell.activation, "activation")
    ract, dract = _activation(cell.recurrent_activation, "recurrent_activation")
    if cell.use_bias:
        bias = _numpy(cell.bias)
        b_in, b_rec = (bias[0], bias[1]) if cell.reset_after else (bias, 0.0)
    else:
        b_in = b_rec = 0.0
    W_z, W_r, W_h = (W[:, j * n:(j + 1) * n] for j in range(3))

    def step(h, x):
        xz, xr, xh = np.split(x @ U + b_in, 3, axis=-1)
        inner = h @ W + b_rec
        mz, mr, mh = np.split(inner, 3, axis=-1)
        z, r = ract(xz + mz), ract(xr + mr)
        dz = dract(xz + mz, z)[:, :, None] * W_z.T[None]       # d z / d h
        dr = dract(xr + mr, r)[:, :, None] * W_r.T[None]       # d r / d h
        if cell.reset_after:
            a_h = xh + r * mh
            da_h = mh[:, :, None] * dr + r[:, :, None] * W_h.T[None]
        else:
            a_h = xh + (r * h) @ W_h
            # a_h_i = sum_m (r_m h_m) W_h[m, i]
            inner_d = dr * h[:, :, None] + r[:, :, None] * np.eye(n)[None]  # d (r h)_m / d h_j
            da_h = np.einsum("mi,bmj->bij", W_h, inner_d)
        hh = act(a_h)
        dhh = dact(a_h, hh)[:, :, None] * da_h
        h_new = z * h + (1.0 - z) * hh
        J = (h - hh)[:, :, None] * dz + z[:, :, None] * np.eye(n)[None] + (1.0 - z)[:, :, None] * dhh
        return h_new, J

    return step


def numpy_step(cell_or_layer):
    """`step(h, x) -> (h_new, J)` in float64 NumPy for a built Keras cell.

    Supports `kr.layers.WCRNNCell` (any residual), `keras.layers.SimpleRNNCell`,
    `keras.layers.GRUCell` (either `reset_after`) and `keras.layers.LSTMCell`
    (state `[h, c]`), with the activations tanh, sigmoid, relu and linear; or
    their `RNN` layers. The Jacobians are written out here from the cells'
    equations, independently of the engine's tangent maps.

    Args:
        cell_or_layer: the cell or its RNN layer, built.

    Returns:
        A function of `h` (batch, S) and `x` (batch, features) returning the
        next state and the step Jacobian `J[b, i, j] = d h_new[i] / d h[j]`.
    """
    from keras_residual.layers.wcrnn_cell import WCRNNCell

    cell, _ = _cell_of(cell_or_layer)
    if not cell.built:
        raise ValueError(f"Cell {cell.name!r} must be built (call it or its layer once) first.")
    if isinstance(cell, WCRNNCell):
        return _wcrnn_step(cell)
    if isinstance(cell, keras.layers.LSTMCell):
        return _lstm_step(cell)
    if isinstance(cell, keras.layers.SimpleRNNCell):
        return _simple_rnn_step(cell)
    if isinstance(cell, keras.layers.GRUCell):
        return _gru_step(cell)
    raise TypeError(
        f"The NumPy reference supports WCRNNCell, SimpleRNNCell, GRUCell and LSTMCell; received "
        f"{type(cell).__name__}. Pass a function step(h, x) -> (h_new, J) instead."
    )


def _cell_of(cell_or_layer):
    """(cell, go_backwards) of an RNN layer or a cell."""
    if isinstance(cell_or_layer, keras.layers.RNN):
        return cell_or_layer.cell, bool(cell_or_layer.go_backwards)
    if isinstance(cell_or_layer, keras.layers.Layer) and hasattr(cell_or_layer, "state_size"):
        return cell_or_layer, False
    raise TypeError(
        "Argument `cell_or_step` must be an RNN cell, its keras.layers.RNN layer or a step "
        f"function; received {cell_or_layer!r} of type {type(cell_or_layer).__name__}."
    )


def _frame(state_size, k, seed):
    """Q_0: the first k columns of the seeded random orthogonal S x S matrix
    (the QR of a standard normal matrix from `default_rng(seed)`, columns
    signed so that diag(R) > 0): the engine's definition, written again."""
    z = np.random.default_rng(seed).standard_normal((state_size, state_size))
    q, r = np.linalg.qr(z)
    return (q * np.sign(np.diag(r))[None, :])[:, :k]


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
        cell_or_step: a built `WCRNNCell`, `SimpleRNNCell`, `GRUCell` or
            `LSTMCell` (or its layer), or a function `step(h, x) -> (h_new, J)`
            on float64 batches.
        inputs: `(batch, timesteps, features)` array.
        num_exponents, warmup, qr_interval, seed: as in `lyapunov_spectrum`.
        initial_state: `None` (zeros) or a `(batch, S)` / `(S,)` array.
        state_size: S; needed only with a step function and no
            `initial_state`.

    Returns:
        A `LyapunovSpectrum` (float64, `backend="numpy"`).

    Example:

    >>> layer = keras.layers.SimpleRNN(8)
    >>> x = np.random.default_rng(0).normal(size=(4, 50, 2)).astype("float32")
    >>> _ = layer(x)
    >>> reference = kr.dynamics.lyapunov_spectrum_numpy(layer, x)
    >>> fast = kr.dynamics.lyapunov_spectrum(layer, x)
    >>> bool(np.abs(fast.exponents - reference.exponents).max() < 1e-3)
    True
    """
    start = time.perf_counter()
    x = check.array("inputs", inputs, ndim=3).astype("float64")
    batch, steps = x.shape[:2]
    go_backwards = False
    if callable(cell_or_step) and not isinstance(cell_or_step, keras.layers.Layer):
        step = cell_or_step
        state_size = check.positive_int("state_size", state_size, allow_none=True)
    else:
        step = numpy_step(cell_or_step)
        cell, go_backwards = _cell_of(cell_or_step)
        state_size = sum(int(s) for s in keras.tree.flatten(cell.state_size))
    if initial_state is None:
        if state_size is None:
            raise ValueError("With a step function, pass `state_size` or `initial_state`.")
        h = np.zeros((batch, state_size))
    else:
        state = check.array("initial_state", initial_state, ndim=(1, 2)).astype("float64")
        if state_size is not None and state.shape[-1] != state_size:
            raise ValueError(
                f"Argument `initial_state` must have shape (batch, {state_size}) or "
                f"({state_size},); received shape {state.shape}."
            )
        h = np.array(np.broadcast_to(state, (batch, state.shape[-1])))
        state_size = h.shape[-1]
    k = check.integer("num_exponents", num_exponents, minimum=1, maximum=state_size,
                      allow_none=True) or state_size
    warmup = check.integer("warmup", warmup, minimum=0, maximum=steps - 1)
    qr_interval = check.integer("qr_interval", qr_interval, minimum=1,
                                allowed="an integer >= 1 (the reference has no 'auto' schedule)")
    seed = 0 if seed is None else check.seed("seed", seed)
    if go_backwards:
        x = x[:, ::-1]
    Q = np.array(np.broadcast_to(_frame(state_size, k, seed), (batch, state_size, k)))
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
    return LyapunovSpectrum(
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
