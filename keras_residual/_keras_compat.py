"""The one place this library touches `keras.src`.

`DropoutRNNCell` is the documented mixin that gives an RNN cell Keras'
dropout-mask caching (one mask per sequence, shared across time steps), and
it is how `keras.layers.RNN` recognises a cell whose masks it must prepare.
"""

from keras.src.layers.rnn.dropout_rnn_cell import DropoutRNNCell  # noqa: F401

__all__ = ["DropoutRNNCell"]
