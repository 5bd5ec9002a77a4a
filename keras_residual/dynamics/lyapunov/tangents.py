"""Tangent maps of recurrent cells: one step and `J_t Q`, without forming `J_t`.

`kr.dynamics.lyapunov_spectrum` needs, at each step, the product of the step
Jacobian `J_t = d s_t / d s_{t-1}` (s the concatenation of the cell's states)
with a block of k tangent vectors `Q`. A cell provides it through one door:

    tangent(inputs, states, tangents, input_tangents=None) -> (new_states, Z)

- `inputs`: the step's inputs `(batch, features)`;
- `states`: the cell's previous states, a flat list `[s_1, ..., s_m]`;
- `tangents`: `Q`, `(batch, S, k)` over the concatenated state;
- `input_tangents`: optional `(batch, features, k)` tangent vectors of the
  inputs (a stacked cell's input is the previous cell's output);
- returns the new states (a flat list, as the cell's `call` gives them) and
  `Z = J_t Q` (plus the inputs' term `d s_t / d x_t X` when given),
  `(batch, S, k)`; in inference mode (no dropout).

`tangent_map(cell_or_layer)` returns that function for a cell (or the cell
of a `keras.layers.RNN` layer): the cell's own
`tangent` method (`kr.layers.WCRNNCell` has one), else the one registered
here for its exact class (Keras' `SimpleRNNCell`, `GRUCell` with either
`reset_after`, `LSTMCell`, and `StackedRNNCells` of cells that have one), else
`None`, and the spectrum comes from forward-mode autodiff. A registered map
needs the activations' derivatives (`tanh`, `sigmoid`, `relu`, `linear`);
with another activation the cell takes the autodiff path. Register a map for
your own cell class with `register_tangent(cls)`, or give the class a
`tangent` method.

A stacked cell needs each cell's output to be its first state (true of every
Keras cell and of `WCRNNCell`): the output's tangent is then the first
state's block of `Z`.

The engine calls a cell's map once on its first step and checks what it
returns (`check_output`): a map that gives states or a `Z` of the wrong
shape is an error naming the map, never a wrong spectrum.
"""

import keras
from keras import ops

from keras_residual import _activations

_REGISTRY = {}


def register_tangent(cell_class):
    """Register `function(cell, inputs, states, tangents, input_tangents)` as
    the tangent map of cells of exactly `cell_class` (not its subclasses,
    which may change the step).

    Args:
        cell_class: a subclass of `keras.layers.Layer` (an RNN cell class).

    Returns:
        A decorator that registers the function and returns it unchanged.

    Raises:
        TypeError: `cell_class` is not a layer class, or the decorated
            object is not callable.

    Example:

    >>> class Leaky(keras.layers.Layer):  # h_t = 0.5 h + tanh(x)
    ...     state_size = 2
    ...     def call(self, x, states):
    ...         h = 0.5 * states[0] + ops.tanh(x)
    ...         return h, [h]
    >>> @kr.dynamics.register_tangent(Leaky)
    ... def leaky_tangent(cell, inputs, states, tangents, input_tangents=None):
    ...     h = 0.5 * states[0] + ops.tanh(inputs)
    ...     return [h], 0.5 * tangents
    >>> spectrum = kr.dynamics.lyapunov_spectrum(Leaky(), np.ones((2, 20, 2)))
    >>> spectrum.jacobian, np.round(spectrum.exponents, 4).tolist()  # log 0.5
    ('analytic', [-0.6931, -0.6931])
    """
    if not (isinstance(cell_class, type) and issubclass(cell_class, keras.layers.Layer)):
        raise TypeError(
            "Argument `cell_class` of register_tangent must be a cell class (a subclass of "
            f"keras.layers.Layer); received cell_class={cell_class!r} of type "
            f"{type(cell_class).__name__}."
        )

    def decorate(function):
        if not callable(function):
            raise TypeError(
                f"register_tangent({cell_class.__name__}) decorates a function "
                "(cell, inputs, states, tangents, input_tangents) -> (new_states, Z); "
                f"received {function!r} of type {type(function).__name__}."
            )
        _REGISTRY[cell_class] = function
        return function

    return decorate


def describe(cell):
    """How the error messages name a cell's tangent map."""
    if callable(getattr(cell, "tangent", None)):
        return f"{type(cell).__name__}.tangent"
    function = _REGISTRY.get(type(cell))
    name = getattr(function, "__qualname__", repr(function))
    return f"{name}, registered for {type(cell).__name__}"


def check_output(cell, output, batch, sizes, k):
    """Check once what a cell's tangent map returned for `batch` states of
    sizes `sizes` and `k` tangent vectors: `(new_states, Z)` with one state
    per size and `Z` of shape (batch, sum(sizes), k).

    Raises:
        TypeError: the map returned another structure.
        ValueError: a state or `Z` has another shape.
    """
    what = f"The tangent map of cell {cell.name!r} ({describe(cell)})"
    if not (isinstance(output, (list, tuple)) and len(output) == 2):
        raise TypeError(
            f"{what} must return (new_states, Z); received {type(output).__name__} "
            f"{output!r:.200}."
        )
    new_states, Z = output
    states = keras.tree.flatten(new_states)
    widths = [tuple(ops.shape(s)) for s in states]
    expected = [(batch, size) for size in sizes]
    if widths != expected:
        raise ValueError(
            f"{what} returned new states of shapes {widths}; the cell's states need "
            f"{expected} (state_size {cell.state_size!r})."
        )
    shape = tuple(ops.shape(Z))
    if shape != (batch, sum(sizes), k):
        raise ValueError(
            f"{what} returned Z = J_t Q of shape {shape}; it must be (batch, state size, k) "
            f"= {(batch, sum(sizes), k)}, one column per column of Q."
        )


def tangent_map(cell):
    """The tangent map `f(inputs, states, tangents, input_tangents=None)` of
    a cell, or of the cell of a `keras.layers.RNN` layer; `None` when it
    has none (the caller then uses autodiff).

    Raises:
        TypeError: `cell` is neither an RNN cell nor a `keras.layers.RNN`.
    """
    if isinstance(cell, keras.layers.RNN):
        cell = cell.cell
    elif not (isinstance(cell, keras.layers.Layer) and hasattr(cell, "state_size")):
        raise TypeError(
            "Argument `cell` of tangent_map must be an RNN cell (a Keras layer with a "
            "`state_size`) or a keras.layers.RNN layer; received "
            f"{cell!r:.100} of type {type(cell).__name__}."
        )
    own = getattr(cell, "tangent", None)
    if callable(own):
        if getattr(cell, "has_analytic_jacobian", True) is False:
            return None
        return own
    function = _REGISTRY.get(type(cell))
    if function is None or not _available(cell):
        return None
    return lambda inputs, states, tangents, input_tangents=None: function(
        cell, inputs, states, tangents, input_tangents
    )


def _available(cell):
    """Whether a registered map applies: every activation has a derivative
    and, for stacks, every cell has a map."""
    cells = getattr(cell, "cells", None)
    if cells is not None:
        return all(tangent_map(c) is not None for c in cells)
    for name in ("activation", "recurrent_activation"):
        activation = getattr(cell, name, None)
        if activation is not None and _activations.derivative(activation) is None:
            return False
    return True


def _slope(activation, a):
    """`(sigma(a), sigma'(a))`."""
    y = activation(a)
    return y, _activations.derivative(activation)(a, y)


def _project(kernel, tangents):
    """`kernel^T Q` for a (rows, cols) kernel and Q (batch, rows, k)."""
    return ops.einsum("mi,bmk->bik", kernel, tangents)


def _column(vector):
    return vector[:, :, None]


@register_tangent(keras.layers.SimpleRNNCell)
def _simple_rnn(cell, inputs, states, tangents, input_tangents):
    """h_t = sigma(x U + b + h W):  J Q = diag(sigma'(a)) (W^T Q)."""
    h = states[0]
    a = ops.einsum("bf,fn->bn", inputs, cell.kernel) + ops.einsum("bm,mn->bn", h, cell.recurrent_kernel)
    if cell.use_bias:
        a = a + cell.bias
    y, slope = _slope(cell.activation, a)
    product = _project(cell.recurrent_kernel, tangents)
    if input_tangents is not None:
        product = product + _project(cell.kernel, input_tangents)
    return [y], _column(slope) * product


@register_tangent(keras.layers.LSTMCell)
def _lstm(cell, inputs, states, tangents, input_tangents):
    """Keras' LSTM, states [h, c]; gates i, f, g, o from z = x U + h W + b:

        c_t = f c + i g,   h_t = o act(c_t)
        dc  = df c + f Qc + di g + i dg,   dh = do act(c_t) + o act'(c_t) dc
    """
    n = cell.units
    h, c = states
    z = ops.einsum("bf,fn->bn", inputs, cell.kernel) + ops.einsum("bm,mn->bn", h, cell.recurrent_kernel)
    if cell.use_bias:
        z = z + cell.bias
    dz = _project(cell.recurrent_kernel, tangents[:, :n])
    if input_tangents is not None:
        dz = dz + _project(cell.kernel, input_tangents)
    gates = cell.recurrent_activation
    i, di = _slope(gates, z[:, :n])
    f, df = _slope(gates, z[:, n:2 * n])
    g, dg = _slope(cell.activation, z[:, 2 * n:3 * n])
    o, do = _slope(gates, z[:, 3 * n:])
    c_new = f * c + i * g
    act_c, dact_c = _slope(cell.activation, c_new)
    h_new = o * act_c
    dc = (
        _column(df * c) * dz[:, n:2 * n]
        + _column(f) * tangents[:, n:]
        + _column(di * g) * dz[:, :n]
        + _column(i * dg) * dz[:, 2 * n:3 * n]
    )
    dh = _column(do * act_c) * dz[:, 3 * n:] + _column(o * dact_c) * dc
    return [h_new, c_new], ops.concatenate([dh, dc], axis=1)


@register_tangent(keras.layers.GRUCell)
def _gru(cell, inputs, states, tangents, input_tangents):
    """Keras' GRU (either `reset_after`); gates z, r and candidate hh:

        h_t = z h + (1 - z) hh,   dh = dz (h - hh) + z Q + (1 - z) dhh
    """
    n = cell.units
    h = states[0]
    kernel, recurrent = cell.kernel, cell.recurrent_kernel
    if cell.use_bias and cell.reset_after:
        input_bias, recurrent_bias = cell.bias[0], cell.bias[1]
    else:
        input_bias, recurrent_bias = (cell.bias if cell.use_bias else None), None
    x = ops.einsum("bf,fn->bn", inputs, kernel)
    if input_bias is not None:
        x = x + input_bias
    dx = None if input_tangents is None else _project(kernel, input_tangents)
    if cell.reset_after:
        inner = ops.einsum("bm,mn->bn", h, recurrent)
        if recurrent_bias is not None:
            inner = inner + recurrent_bias
        d_inner = _project(recurrent, tangents)
    else:
        inner = ops.einsum("bm,mn->bn", h, recurrent[:, :2 * n])
        d_inner = _project(recurrent[:, :2 * n], tangents)
    gates = cell.recurrent_activation
    z, dz_slope = _slope(gates, x[:, :n] + inner[:, :n])
    r, dr_slope = _slope(gates, x[:, n:2 * n] + inner[:, n:2 * n])
    dz_in, dr_in = d_inner[:, :n], d_inner[:, n:2 * n]
    if dx is not None:
        dz_in, dr_in = dz_in + dx[:, :n], dr_in + dx[:, n:2 * n]
    dz, dr = _column(dz_slope) * dz_in, _column(dr_slope) * dr_in
    if cell.reset_after:
        recurrent_h = inner[:, 2 * n:]
        candidate = x[:, 2 * n:] + r * recurrent_h
        d_candidate = dr * _column(recurrent_h) + _column(r) * d_inner[:, 2 * n:]
    else:
        candidate = x[:, 2 * n:] + ops.einsum("bm,mn->bn", r * h, recurrent[:, 2 * n:])
        d_candidate = _project(recurrent[:, 2 * n:], dr * _column(h) + _column(r) * tangents)
    if dx is not None:
        d_candidate = d_candidate + dx[:, 2 * n:]
    hh, dhh_slope = _slope(cell.activation, candidate)
    h_new = z * h + (1.0 - z) * hh
    Z = dz * _column(h - hh) + _column(z) * tangents + _column((1.0 - z) * dhh_slope) * d_candidate
    return [h_new], Z


@register_tangent(keras.layers.StackedRNNCells)
def _stacked(cell, inputs, states, tangents, input_tangents):
    """Block lower-triangular J: each cell's block from its own map, its input
    tangent the previous cell's output (first state) tangent."""
    new_states, blocks, offset, start = [], [], 0, 0
    for sub in cell.cells:
        count = len(_flat_sizes(sub))
        sub_states = states[start:start + count]
        size = sum(int(ops.shape(s)[-1]) for s in sub_states)
        sub_new, Z = tangent_map(sub)(
            inputs, sub_states, tangents[:, offset:offset + size], input_tangents
        )
        width = int(ops.shape(sub_new[0])[-1])
        inputs, input_tangents = sub_new[0], Z[:, :width]
        new_states.extend(sub_new)
        blocks.append(Z)
        offset += size
        start += count
    return new_states, ops.concatenate(blocks, axis=1)


def _flat_sizes(cell):
    return keras.tree.flatten(cell.state_size)
