"""WCRNN: the fused weakly coupled residual RNN layer."""

import keras
import numpy as np
from keras import ops

from keras_residual import _validation as check
from keras_residual.layers import _wcrnn_kernels
from keras_residual.layers.wcrnn_cell import WCRNNCell

_CELL_ARGS = (
    "units",
    "coupling",
    "residual",
    "activation",
    "use_bias",
    "kernel_initializer",
    "recurrent_initializer",
    "bias_initializer",
    "kernel_regularizer",
    "recurrent_regularizer",
    "bias_regularizer",
    "kernel_constraint",
    "recurrent_constraint",
    "bias_constraint",
    "residual_trainable",
    "dropout",
    "recurrent_dropout",
    "seed",
)


@keras.saving.register_keras_serializable(package="keras_residual")
class WCRNN(keras.layers.RNN):
    """Weakly coupled residual RNN layer, with a fused recurrence.

    Same model and weights as `keras.layers.RNN(WCRNNCell(...))`:

        h_t = rho(h_{t-1}) + coupling * activation(x_t @ U + h_{t-1} @ W + b)

    but the recurrence runs in each backend's best loop, with a hand-written
    backward pass that carries only the state's gradient and forms the
    kernels' gradients in one product each after the loop: one `lax.scan`
    with a `jax.custom_vjp` on JAX, one XLA-compiled `tf.while_loop` with a
    `tf.custom_gradient` on TensorFlow (the input projection `x_t @ U + b`
    formed per step inside it), and on PyTorch a hand-written loop
    (`torch.autograd.Function`); on JAX and PyTorch the input projection of
    all steps is one matmul before the loop.
    A trainable residual, or an activation without a known derivative
    (tanh, sigmoid, relu and linear have one), is differentiated by the
    backend's autodiff on JAX and TensorFlow.

    The generic `keras.layers.RNN` path (same results, slower) is taken
    when a fast path cannot honour an option: a `mask`, `unroll=True`,
    `recurrent_dropout` during training, and on PyTorch a trainable
    residual or an activation other than tanh, sigmoid, relu or linear.
    `layer.uses_fused_kernel(...)` tells which path a call takes.

    Args:
        units, coupling, residual, activation, use_bias, *_initializer,
            *_regularizer, *_constraint, residual_trainable, dropout,
            recurrent_dropout, seed: as in `kr.layers.WCRNNCell`.
        return_sequences, return_state, go_backwards, stateful, unroll:
            as in `keras.layers.RNN`.

    Call arguments:
        sequences: `(batch, timesteps, features)`.
        initial_state: optional `[h0]` or `h0`, `(batch, units)`.
        mask: optional `(batch, timesteps)` boolean mask.
        training: whether dropout is active.

    Example:

    >>> layer = kr.layers.WCRNN(
    ...     128, coupling=0.02,
    ...     residual=kr.residuals.Rotational(angle=2 * np.pi / 28))
    >>> tuple(layer(np.zeros((2, 784, 1))).shape)
    (2, 128)
    """

    def __init__(
        self,
        units,
        coupling=0.02,
        residual="identity",
        activation="tanh",
        use_bias=True,
        kernel_initializer="glorot_uniform",
        recurrent_initializer="orthogonal",
        bias_initializer="zeros",
        kernel_regularizer=None,
        recurrent_regularizer=None,
        bias_regularizer=None,
        activity_regularizer=None,
        kernel_constraint=None,
        recurrent_constraint=None,
        bias_constraint=None,
        residual_trainable=False,
        dropout=0.0,
        recurrent_dropout=0.0,
        return_sequences=False,
        return_state=False,
        go_backwards=False,
        stateful=False,
        unroll=False,
        seed=None,
        **kwargs,
    ):
        cell = WCRNNCell(
            units,
            coupling=coupling,
            residual=residual,
            activation=activation,
            use_bias=use_bias,
            kernel_initializer=kernel_initializer,
            recurrent_initializer=recurrent_initializer,
            bias_initializer=bias_initializer,
            kernel_regularizer=kernel_regularizer,
            recurrent_regularizer=recurrent_regularizer,
            bias_regularizer=bias_regularizer,
            kernel_constraint=kernel_constraint,
            recurrent_constraint=recurrent_constraint,
            bias_constraint=bias_constraint,
            residual_trainable=residual_trainable,
            dropout=dropout,
            recurrent_dropout=recurrent_dropout,
            seed=seed,
            dtype=kwargs.get("dtype", None),
            trainable=kwargs.get("trainable", True),
            name="wcrnn_cell",
        )
        super().__init__(
            cell,
            return_sequences=return_sequences,
            return_state=return_state,
            go_backwards=go_backwards,
            stateful=stateful,
            unroll=unroll,
            activity_regularizer=activity_regularizer,
            **kwargs,
        )
        self.input_spec = [keras.layers.InputSpec(ndim=3)]

    def uses_fused_kernel(self, mask=None, training=False):
        """Whether a call with this mask and training flag runs the fused kernel."""
        kernel = _wcrnn_kernels.get_kernel()
        cell = self.cell
        if kernel is None or mask is not None or self.unroll:
            return False
        if training and cell.recurrent_dropout > 0:
            return False
        return kernel.supports(cell.activation, cell.residual, cell.residual_trainable)

    def build(self, sequences_shape, initial_state_shape=None):
        super().build(sequences_shape, initial_state_shape)
        # After build the feature axis is fixed: a call with other features is
        # refused by Keras' input check instead of failing inside a kernel.
        features = sequences_shape[-1]
        if features is not None:
            self.input_spec = [keras.layers.InputSpec(ndim=3, axes={-1: int(features)})]

    def call(self, sequences, initial_state=None, mask=None, training=False):
        sequences = check.floating(sequences, self.compute_dtype)
        check.time_steps("sequences", sequences.shape)
        if initial_state is not None:
            self._check_initial_state(sequences, initial_state)
        return super().call(sequences, mask=mask, training=training, initial_state=initial_state)

    def _check_initial_state(self, sequences, initial_state):
        """One `(batch, units)` state, for the batch of `sequences`."""
        states = initial_state if isinstance(initial_state, (list, tuple)) else [initial_state]
        if len(states) != 1:
            raise ValueError(
                f"Argument `initial_state` must be one state of shape (batch, {self.cell.units}) "
                f"(or a list holding it); received a list of {len(states)} entries."
            )
        shape = getattr(states[0], "shape", None)
        if shape is None:
            shape = np.shape(states[0])
        check.state_shape(
            "initial_state", shape, (sequences.shape[0], self.cell.units)
        )

    def inner_loop(self, sequences, initial_state, mask, training=False):
        if keras.tree.is_nested(mask):
            mask = mask[0]
        if not self.uses_fused_kernel(mask, training):
            return super().inner_loop(sequences, initial_state, mask, training=training)
        cell = self.cell
        if training and cell.dropout > 0:
            dp_mask = cell.get_dropout_mask(sequences[:, 0, :])
            sequences = sequences * ops.expand_dims(dp_mask, 1)
        dtype = sequences.dtype
        bias = None if cell.bias is None else ops.convert_to_tensor(cell.bias, dtype=dtype)
        h0 = initial_state[0] if isinstance(initial_state, (list, tuple)) else initial_state
        last, outputs, h = _wcrnn_kernels.get_kernel().wcrnn_scan(
            sequences,
            ops.convert_to_tensor(cell.kernel, dtype=dtype),
            bias,
            ops.convert_to_tensor(h0, dtype=dtype),
            ops.convert_to_tensor(cell.recurrent_kernel, dtype=dtype),
            cell.coupling,
            cell.activation,
            cell.residual,
            go_backwards=self.go_backwards,
            return_sequences=self.return_sequences,
            residual_trainable=cell.residual_trainable,
        )
        if outputs is None:
            outputs = ops.expand_dims(last, 1)
        return last, outputs, [h]

    def get_config(self):
        cell_config = self.cell.get_config()
        config = {k: cell_config[k] for k in _CELL_ARGS}
        config["activity_regularizer"] = keras.regularizers.serialize(self.activity_regularizer)
        base_config = super().get_config()
        del base_config["cell"]
        return {**base_config, **config}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def _cell_property(name):
    return property(lambda self: getattr(self.cell, name), doc=f"The cell's `{name}`.")


# Cell options read through the layer, as `keras.layers.SimpleRNN` does.
for _name in _CELL_ARGS:
    setattr(WCRNN, _name, _cell_property(_name))
del _name
