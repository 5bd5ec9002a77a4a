"""The one place this library touches `keras.src`.

- `DropoutRNNCell` is the documented mixin that gives an RNN cell Keras'
  dropout-mask caching (one mask per sequence, shared across time steps),
  and it is how `keras.layers.RNN` recognises a cell whose masks it must
  prepare.
- `Functional` (the class of every `keras.Model(inputs, outputs)`) and
  `get_keras_mask`, which `LyapunovCallback` needs to follow a model's graph
  to its recurrent layer (Keras has no public API for a graph's nodes).
- `float64_ops()` works around keras-team/keras#23704: on the jax and torch
  backends, Keras 3.15's type promotion (`result_type`) maps float64 to
  float32, so `ops.matmul` of two float64 tensors (torch), `ops.tanh` of one
  (jax) and the Keras cells built on them compute in float32. Validation in
  float64 (Lyapunov spectra, tangent maps, finite differences) needs the
  float64 it asks for; inside this context float64 promotes to float64, as
  it does on TensorFlow.
- `autocast_off()`: Keras' `AutocastScope(None)`. A layer whose dtype policy
  is mixed runs its `call` inside an autocast scope of its compute dtype
  (even with `autocast=False`, when no scope is open yet), where every float
  variable reads, and reports its dtype, as float16; a computation that
  must stay in float32 under any policy (`kr.layers.LyapunovExponents`)
  reads the variables inside this context instead.
"""

import contextlib

from keras.src.backend.common import dtypes as _dtypes
from keras.src.backend.common.variables import AutocastScope as _AutocastScope
from keras.src.layers.rnn.dropout_rnn_cell import DropoutRNNCell  # noqa: F401

try:
    from keras.src.models.functional import Functional  # noqa: F401
except ImportError:  # pragma: no cover (another Keras layout)
    Functional = None

try:
    from keras.src.backend import get_keras_mask  # noqa: F401
except ImportError:  # pragma: no cover (another Keras layout)

    def get_keras_mask(x):
        return getattr(x, "_keras_mask", None)


__all__ = ["DropoutRNNCell", "Functional", "autocast_off", "float64_ops", "get_keras_mask"]


def autocast_off():
    """Within the context, float variables read in their own dtype."""
    return _AutocastScope(None)


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
