"""The cell plumbing of the engine: which cell, its state layout, its copy in another dtype.

- `resolve_cell(cell_or_layer)`: an RNN layer's cell (and its direction) or
  the cell itself.
- `StateLayout`: a cell's states as one vector s = [s_1, ..., s_m] (LSTM:
  [h, c]): `split`, `pack` (the cell's nesting) and `flatten`.
- `initial_frame`, `initial_states`: Q_0 and s_0.
- `cell_in_dtype`, `check_clone`, `clone_mapping`: a copy of a cell that
  computes in float32 or float64 (nested cells included), and the mapping
  that runs it on the original cell's weights.
- `call_checked`, `check_tangent`: one step of the cell and of its tangent
  map, eagerly, with errors that say what is wrong.
- `MapCell`: a cell from a map (the logistic map, Hénon, ...).
"""

import functools
import weakref

import keras
import numpy as np
from keras import ops

from keras_residual import _validation as check
from keras_residual._keras_compat import autocast_off
from keras_residual.dynamics.lyapunov import tangents as tangents_lib


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


class StateLayout:
    """A cell's states as one (batch, S) vector: their nesting and sizes.

    Args:
        cell: an RNN cell; its `state_size` is an integer or a nested list
            of integers.

    Attributes:
        structure: the cell's `state_size`.
        sizes: the flat list of state sizes.
        size: S, their sum.
    """

    def __init__(self, cell):
        structure = cell.state_size
        flat = keras.tree.flatten(structure)
        if not flat or not all(isinstance(s, (int, np.integer)) and s > 0 for s in flat):
            raise TypeError(
                f"Lyapunov exponents need cells whose states are vectors; cell {cell.name!r} "
                f"has state_size={structure!r} (allowed: an integer or a nested list of "
                "integers)."
            )
        self.structure = structure
        self.sizes = [int(s) for s in flat]
        self.size = sum(self.sizes)
        self._bounds = [int(b) for b in np.cumsum([0] + self.sizes)]

    def split(self, s):
        """The flat list of states of a concatenated (batch, S) `s`."""
        return [s[:, a:b] for a, b in zip(self._bounds[:-1], self._bounds[1:])]

    def pack(self, parts):
        """A flat list of states in the nesting the cell's `call` takes."""
        if isinstance(self.structure, (int, np.integer)):
            return list(parts)
        return keras.tree.pack_sequence_as(self.structure, list(parts))

    @staticmethod
    def flatten(states):
        """The concatenated (batch, S) vector of a cell's (nested) states."""
        parts = keras.tree.flatten(states)
        return parts[0] if len(parts) == 1 else ops.concatenate(parts, axis=-1)


@functools.lru_cache(maxsize=16)
def _orthogonal(state_size, seed):
    """A seeded random orthogonal S x S matrix (float64, read-only)."""
    q, r = np.linalg.qr(np.random.default_rng(seed).standard_normal((state_size, state_size)))
    q = q * np.where(np.diag(r) < 0, -1.0, 1.0)[None, :]
    q.setflags(write=False)
    return q


def initial_frame(state_size, k, seed, dtype):
    """Q_0: the first k columns of the seeded random orthogonal S x S matrix
    (so the top-k frame is the first k columns of the full one)."""
    return _orthogonal(int(state_size), int(seed))[:, :k].astype(dtype)


def initial_states(initial_state, batch, layout, dtype):
    """s_0 as a (batch, S) NumPy array: zeros for `None`, else from one
    array (batch, S) or (S,), or a list with one array per state."""
    if initial_state is None:
        return np.zeros((batch, layout.size), dtype=dtype)
    if isinstance(initial_state, (list, tuple)):
        parts = [np.asarray(ops.convert_to_numpy(p)) for p in initial_state]
        if len(parts) != len(layout.sizes):
            raise ValueError(
                f"Argument `initial_state` must have one entry per state of the cell "
                f"({len(layout.sizes)}: sizes {layout.sizes}); received {len(parts)} entries."
            )
        parts = [np.broadcast_to(p, p.shape if p.ndim == 2 else (batch,) + p.shape) for p in parts]
        state = np.concatenate(parts, axis=-1)
    else:
        state = np.asarray(ops.convert_to_numpy(initial_state))
    if state.ndim == 1:
        state = np.broadcast_to(state, (batch,) + state.shape)
    if state.shape != (batch, layout.size):
        raise ValueError(
            f"Argument `initial_state` must have shape (batch, state_size) = "
            f"({batch}, {layout.size}) (the concatenated states), (state_size,), or be a list "
            f"of per-state arrays; received shape {tuple(np.shape(initial_state))}."
        )
    return np.array(state, dtype=dtype)


# --------------------------------------------------------------------------
# A copy of a cell in another dtype

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
    """`[(clone weight, the cell's weight's current value in `dtype`)]`
    (weights, in their order of creation, which a copy from the config
    repeats; a seed generator's state is no weight, and the steps run in
    inference mode): run under `keras.StatelessScope(state_mapping=...)`,
    the clone computes with the cell's weights, and gradients reach the
    cell's variables."""
    with autocast_off():
        values = [v.value for v in cell.weights]
    return [
        (mine, ops.cast(value, dtype) if _is_float(value.dtype) else value)
        for mine, value in zip(clone.weights, values)
    ]


def copy_weights(cell, clone):
    """The cell's current weights into its clone (in the clone's dtypes)."""
    if clone is not cell:
        clone.set_weights([np.asarray(w, dtype=v.dtype)
                           for w, v in zip(cell.get_weights(), clone.weights)])


def working_cell(cell, x0, h0, layout, dtype):
    """The cell (built on one step, in float32, if it is not yet) or its
    copy computing in `dtype` with the cell's current weights, called once
    on `x0` (batch, features) and `h0` (batch, S) in `dtype`."""
    if not cell.built:
        call_checked(cell, x0.astype("float32"), h0.astype("float32"), layout)
    work = cell_in_dtype(cell, dtype)
    if work is not cell:
        if not work.built:
            call_checked(work, x0.astype(dtype), h0, layout)
        check_clone(cell, work, dtype)
        copy_weights(cell, work)
    call_checked(work, x0.astype(dtype), h0, layout)
    return work


# --------------------------------------------------------------------------
# One step, eagerly, with clear errors


def call_checked(cell, x, states, layout):
    """Call the cell once eagerly on one step (builds it); failures and
    states of other sizes are clear errors."""
    try:
        _, new_states = cell(x, layout.pack(layout.split(states)), training=False)
    except Exception as error:  # noqa: BLE001
        raise ValueError(
            f"Cell {cell.name!r} ({type(cell).__name__}) could not be called on one step of "
            f"`inputs` (shape {x.shape}) with states of sizes {layout.sizes}: {error}"
        ) from error
    got = [int(ops.shape(s)[-1]) for s in keras.tree.flatten(new_states)]
    if got != layout.sizes:
        raise TypeError(
            f"Cell {cell.name!r} returned states of sizes {got}, but its state_size says "
            f"{layout.sizes}."
        )


def check_tangent(cell, x, states, layout, k):
    """Run the cell's tangent map once on one step (`x` (batch, features),
    concatenated `states` (batch, S)) with `k` tangent vectors and check its
    output (`tangents.check_output`)."""
    parts = [ops.convert_to_tensor(p) for p in layout.split(states)]
    dtype = keras.backend.standardize_dtype(states.dtype)
    frame = initial_frame(layout.size, k, 0, dtype)
    Q = ops.convert_to_tensor(np.broadcast_to(frame, (states.shape[0],) + frame.shape), dtype=dtype)
    output = tangents_lib.tangent_map(cell)(ops.convert_to_tensor(x), parts, Q)
    tangents_lib.check_output(cell, output, states.shape[0], layout.sizes, k)


# --------------------------------------------------------------------------
# A cell from a map


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
