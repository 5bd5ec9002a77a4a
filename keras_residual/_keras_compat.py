"""The one place this library touches Keras' private API (and TensorFlow's).

Everything else in the library uses public Keras (`keras.ops`, `keras.layers`,
`keras.Model`, `keras.Function`, ...). What is here has no public equivalent
in Keras 3.15; each piece is checked by `tests/test_keras_compat.py`, which
fails with the piece's name if a Keras release changes it, and each function
raises `KerasInternalsError` (naming the piece and the Keras version) where a
missing internal would otherwise make a result silently wrong.

- `DropoutRNNCell` (`keras.src.layers.rnn.dropout_rnn_cell`): the documented
  mixin that gives an RNN cell Keras' dropout-mask caching (one mask per
  sequence, shared across time steps); `keras.layers.RNN` recognises a cell
  whose masks it must prepare by it.
- `get_keras_mask(x)` (`keras.src.backend`): the mask Keras attached to a
  tensor (from `Embedding(mask_zero=True)` or `Masking`).
- `sublayers(layer, recursive)`: the layers a layer tracks
  (`Layer._flatten_layers`), a custom layer's attributes included.
- `sequential_graph(model)`: the Functional graph a built `Sequential` runs
  (`Sequential._functional`).
- `call_nodes(graph, op)`: the calls of `op` in a Functional graph, each
  with its `arguments` (`Functional._nodes_by_depth`,
  `Operation._inbound_nodes`): the graph's own record of what was passed to
  a layer, which `LyapunovCallback` follows to a recurrent layer.
- `calling_callbacks(callback)`: the callbacks of the `fit` calling
  `callback` (Keras 3 gives a callback no handle on its siblings; found in
  the `keras.callbacks.CallbackList` among the callers' stack frames).
- `float64_ops()`: works around keras-team/keras#23704: on the jax and
  torch backends, Keras 3.15's type promotion (`result_type`) maps float64
  to float32, so `ops.matmul` of two float64 tensors (torch), `ops.tanh` of
  one (jax) and the Keras cells built on them compute in float32. Validation
  in float64 (Lyapunov spectra, tangent maps, finite differences) needs the
  float64 it asks for; inside this context float64 promotes to float64, as
  it does on TensorFlow (`keras.src.backend.common.dtypes`).
- `autocast_off()`: Keras' `AutocastScope(None)`. A layer whose dtype policy
  is mixed runs its `call` inside an autocast scope of its compute dtype
  (even with `autocast=False`, when no scope is open yet), where every float
  variable reads, and reports its dtype, as float16; a computation that must
  stay in float32 under any policy (`kr.layers.LyapunovExponents`) reads the
  variables inside this context instead. (Inside it a variable's `dtype`
  reports the default float type: read `variable.value.dtype`.)
- `quiet_tracing(function)`: TensorFlow's private flag that silences the
  "frequent retracing" warning of a `tf.function` that is retraced by
  design (one compiled loop per configuration, cached by the caller).
- `tape_may_record()`: TensorFlow's `could_possibly_record`
  (`tensorflow.python.eager.record`): whether a gradient tape is active where
  this runs (eagerly, or while a `tf.function` traces). The fused TensorFlow
  kernel runs a loop that keeps nothing for a backward pass where none can
  be asked for (`predict`), as the JAX and torch kernels do; where
  TensorFlow lacks the function, True (the differentiable path, slower, never
  wrong).
"""

import contextlib
import inspect

import keras
from keras.src.backend import get_keras_mask as _get_keras_mask
from keras.src.backend.common import dtypes as _dtypes
from keras.src.backend.common.variables import AutocastScope as _AutocastScope
from keras.src.layers.rnn.dropout_rnn_cell import DropoutRNNCell  # noqa: F401

__all__ = [
    "DropoutRNNCell",
    "KerasInternalsError",
    "autocast_off",
    "call_nodes",
    "calling_callbacks",
    "float64_ops",
    "get_keras_mask",
    "quiet_tracing",
    "sequential_graph",
    "sublayers",
    "tape_may_record",
]


class KerasInternalsError(RuntimeError):
    """A private piece of Keras this library relies on is missing or changed."""


def _missing(piece, error=None):
    return KerasInternalsError(
        f"keras-residual relies on Keras' private {piece}, which Keras {keras.__version__} "
        f"does not provide as expected ({error!r}). Please report this with your Keras "
        "version; tests/test_keras_compat.py shows which piece changed."
    )


def get_keras_mask(x):
    """The mask Keras attached to `x` (a tensor or KerasTensor), or None."""
    return _get_keras_mask(x)


def sublayers(layer, recursive=True):
    """The layers `layer` tracks (not itself; nested ones too if `recursive`);
    [] for an operation that is not a layer (`keras.ops` in a graph)."""
    if not isinstance(layer, keras.layers.Layer):
        return []
    try:
        return list(layer._flatten_layers(include_self=False, recursive=recursive))
    except AttributeError as error:
        raise _missing("Layer._flatten_layers", error) from error


def sequential_graph(model):
    """The Functional graph a built `keras.Sequential` runs, or None when
    the model has not been built on an input shape."""
    if not hasattr(model, "_functional"):
        raise _missing("Sequential._functional")
    return model._functional


def call_nodes(graph, op):
    """The calls of `op` in the Functional `graph` (not those in other
    models that use it), each with `arguments.args` and `.kwargs`."""
    try:
        ids = {id(node) for nodes in graph._nodes_by_depth.values() for node in nodes}
        return [node for node in op._inbound_nodes if id(node) in ids]
    except AttributeError as error:
        raise _missing("Functional._nodes_by_depth / Operation._inbound_nodes", error) from error


def calling_callbacks(callback):
    """The callbacks of the `fit` that is calling `callback`: those of the
    `keras.callbacks.CallbackList` found among the callers' frames; [] when
    `callback` is not being called by one (e.g. called directly)."""
    frame = inspect.currentframe()
    try:
        caller = frame.f_back
        for _ in range(16):
            if caller is None:
                break
            owner = caller.f_locals.get("self")
            if isinstance(owner, keras.callbacks.CallbackList) and any(
                c is callback for c in owner.callbacks
            ):
                return list(owner.callbacks)
            caller = caller.f_back
        return []
    finally:
        del frame, caller


@contextlib.contextmanager
def float64_ops():
    """Within the context, Keras ops keep float64 as float64 on every backend."""
    table = getattr(_dtypes, "BIT64_TO_BIT32_DTYPE", None)
    if not isinstance(table, dict) or table.get("float64", "float64") == "float64":
        yield
        return
    previous = table["float64"]
    table["float64"] = "float64"
    try:
        yield
    finally:
        table["float64"] = previous


def autocast_off():
    """Within the context, float variables read in their own dtype."""
    return _AutocastScope(None)


def quiet_tracing(function):
    """`function` (a `tf.function`) without TensorFlow's frequent-retracing
    warning; returned unchanged where the flag does not exist."""
    if hasattr(function, "_omit_frequent_tracing_warning"):
        function._omit_frequent_tracing_warning = True
    return function


def tape_may_record():
    """Whether a TensorFlow gradient tape could record what runs here."""
    try:
        from tensorflow.python.eager import record
    except ImportError:
        return True
    could_possibly_record = getattr(record, "could_possibly_record", None)
    return True if could_possibly_record is None else bool(could_possibly_record())
