"""WCRNNCell: one step of a weakly coupled residual RNN."""

import keras
from keras import activations
from keras import constraints
from keras import initializers
from keras import ops
from keras import regularizers

from keras_residual import _activations
from keras_residual import _ops
from keras_residual import _validation as check
from keras_residual import residuals as residuals_lib
from keras_residual._keras_compat import DropoutRNNCell
from keras_residual.layers import _wcrnn_kernels
from keras_residual.layers import _wcrnn_step


@keras.saving.register_keras_serializable(package="keras_residual")
class WCRNNCell(keras.layers.Layer, DropoutRNNCell):
    """Cell of a weakly coupled residual RNN (one time step).

    Computes, with Keras' row vectors (`U = kernel`, `W = recurrent_kernel`):

        a_t = x_t @ U + h_{t-1} @ W + b
        h_t = rho(h_{t-1}) + coupling * activation(a_t)

    The residual map `rho` (`kr.residuals`) sets the memory of the network:
    for weak coupling its Lyapunov exponents tend to log|eig R|.
    `residual=None, coupling=1` is exactly `keras.layers.SimpleRNNCell`.

    The default `coupling=0.02` keeps the network in the weakly coupled
    regime the residual is meant to control. With the default orthogonal `W`
    (spectral norm 1) and `|tanh'| <= 1`, the coupling term moves the step
    Jacobian `J = R + coupling * diag(tanh'(a)) W^T` by at most `coupling`
    in spectral norm, so the exponents stay within about 0.02 of log|eig R|.
    The input must still get in: on pixel-wise sequential MNIST with a
    critical rotation at the data's frequency (our measurement, 64 units,
    Adam 1e-2, 6 epochs) coupling 0.005 reached 0.56 test accuracy, 0.01
    0.59, 0.02 0.64, while 0.05 and 0.1 let the resonantly driven state grow
    to |h| ~ 20-80, saturating the classifier at chance.

    Args:
        units: positive integer, dimension of the state and output.
        coupling: gamma, a finite real number >= 0.
        residual: residual map: a `kr.residuals.Residual`, its config,
            `"identity"` (default) or `None` (no residual). The cell keeps its
            own copy at `cell.residual`, built with the cell.
        activation: activation sigma (default `tanh`).
        use_bias: whether to add the bias `b`.
        kernel_initializer, recurrent_initializer, bias_initializer:
            initializers of `U`, `W`, `b`.
        kernel_regularizer, recurrent_regularizer, bias_regularizer:
            regularizers of `U`, `W`, `b`.
        kernel_constraint, recurrent_constraint, bias_constraint:
            constraints of `U`, `W`, `b`.
        residual_trainable: whether the residual's parameters are trained
            (fixed by default, as in the paper).
        dropout: fraction of the inputs to drop (one mask per sequence),
            in [0, 1).
        recurrent_dropout: fraction of the state entering `h @ W` to drop,
            in [0, 1) (the residual path is never dropped: it is the memory).
        seed: seed of the dropout masks (`None` or an integer >= 0).

    Call arguments:
        sequence: the step's inputs, shape `(batch, features)`.
        states: the previous state `[h]`, shape `(batch, units)`.
        training: whether dropout is active.

    Returns:
        `(h_t, [h_t])`.

    Example:

    >>> cell = kr.layers.WCRNNCell(
    ...     128, coupling=0.05,
    ...     residual=kr.residuals.Rotational(angle=2 * np.pi / 28))
    >>> rnn = keras.layers.RNN(cell)
    >>> tuple(rnn(np.zeros((2, 784, 1))).shape)
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
        kernel_constraint=None,
        recurrent_constraint=None,
        bias_constraint=None,
        residual_trainable=False,
        dropout=0.0,
        recurrent_dropout=0.0,
        seed=None,
        **kwargs,
    ):
        units = check.positive_int("units", units)
        super().__init__(**kwargs)
        self.units = units
        self.coupling = check.nonnegative_real("coupling", coupling)
        self.residual = residuals_lib.get(residual)
        self.activation = activations.get(activation)
        self.use_bias = check.boolean("use_bias", use_bias)

        self.kernel_initializer = initializers.get(kernel_initializer)
        self.recurrent_initializer = initializers.get(recurrent_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.recurrent_regularizer = regularizers.get(recurrent_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        self.kernel_constraint = constraints.get(kernel_constraint)
        self.recurrent_constraint = constraints.get(recurrent_constraint)
        self.bias_constraint = constraints.get(bias_constraint)

        self.residual_trainable = check.boolean("residual_trainable", residual_trainable)
        self.dropout = check.rate("dropout", dropout)
        self.recurrent_dropout = check.rate("recurrent_dropout", recurrent_dropout)
        self.seed = check.seed("seed", seed)
        self.seed_generator = keras.random.SeedGenerator(self.seed)
        self.state_size = units
        self.output_size = units
        # The steps' constants of one keras.layers.RNN call (`get_dropout_mask`).
        self._constants = None
        # Validates the residual against `units` now (e.g. Rotational needs
        # an even number), not at build.
        if self.residual is not None:
            self.residual._check_units(units)

    def build(self, input_shape):
        self.kernel = self.add_weight(
            shape=(input_shape[-1], self.units),
            name="kernel",
            initializer=self.kernel_initializer,
            regularizer=self.kernel_regularizer,
            constraint=self.kernel_constraint,
        )
        self.recurrent_kernel = self.add_weight(
            shape=(self.units, self.units),
            name="recurrent_kernel",
            initializer=self.recurrent_initializer,
            regularizer=self.recurrent_regularizer,
            constraint=self.recurrent_constraint,
        )
        if self.use_bias:
            self.bias = self.add_weight(
                shape=(self.units,),
                name="bias",
                initializer=self.bias_initializer,
                regularizer=self.bias_regularizer,
                constraint=self.bias_constraint,
            )
        else:
            self.bias = None
        if self.residual is not None:
            self.residual.build(self.units, layer=self, trainable=self.residual_trainable)

    def _form(self, dtype):
        return residuals_lib.form_of(self.residual, dtype)

    def _step_constants(self, dtype):
        """What every step of one call needs and no step changes: the
        residual's form, as a product `h @ R^T` where the backend's loop
        prefers that (`_wcrnn_kernels.cell_dense_forms`)."""
        form = self._form(dtype)
        if form.prefers_dense and _wcrnn_kernels.cell_dense_forms():
            form = form.as_dense(self.units, dtype)
        return form

    def get_dropout_mask(self, step_input):
        # Keras' RNN calls this once before its loop, outside it, so that the
        # loop's steps share one dropout mask; the step's other constant
        # (the residual's form, as a product where the loop prefers one) is
        # prepared with it, so that no step rebuilds it. `reset_dropout_mask`, called after the
        # loop, drops them.
        # (The steps call this too, in training: the constants stay.)
        if self._constants is None:
            self._constants = self._step_constants(self.compute_dtype)
        return super().get_dropout_mask(step_input)

    def reset_dropout_mask(self):
        super().reset_dropout_mask()
        self._constants = None

    def _projection(self, sequence):
        """The input projection x_t @ U + b."""
        if self.bias is None:
            return _ops.matmul(sequence, self.kernel)
        # One addmm on torch; on TensorFlow a BiasAdd (as SimpleRNNCell's
        # ops.add), whose gradient is one op in the loop (a broadcasting `+`
        # costs three).
        return _ops.matmul_add(sequence, self.kernel, self.bias)

    def call(self, sequence, states, training=False):
        sequence = check.floating(sequence, self.compute_dtype)
        prev = states[0] if isinstance(states, (list, tuple)) else states
        recurrent_input = None
        if training:
            dp_mask = self.get_dropout_mask(sequence)
            rec_dp_mask = self.get_recurrent_dropout_mask(prev)
            if dp_mask is not None:
                sequence = sequence * dp_mask
            if rec_dp_mask is not None:
                recurrent_input = prev * rec_dp_mask
        form = self._constants
        if form is None or form.tensors and form.tensors[0].dtype != prev.dtype:
            # Called outside keras.layers.RNN: the form as it is (building
            # an (N, N) product per call would cost more than it saves).
            form = self._form(prev.dtype)
        h, _ = _wcrnn_step.step(
            self._projection(sequence), prev, self.recurrent_kernel, self.coupling,
            self.activation, form, recurrent_input=recurrent_input,
        )
        new_state = [h] if isinstance(states, (list, tuple)) else h
        return h, new_state

    @property
    def has_analytic_jacobian(self):
        """Whether `jacobian` and `tangent` are available (the activation's
        derivative is known)."""
        return _activations.derivative(self.activation) is not None

    def _derivative(self):
        derivative = _activations.derivative(self.activation)
        if derivative is None:
            raise NotImplementedError(
                f"No analytic derivative for activation "
                f"{_activations.name_of(self.activation)!r}; known: "
                f"{sorted(_activations.DERIVATIVES)}. Use autodiff instead."
            )
        return derivative

    def tangent(self, inputs, states, tangents, input_tangents=None):
        """One step and its tangent map, in inference mode.

        What `kr.dynamics.lyapunov_spectrum` propagates: with
        `J_t = d h_t / d h_{t-1}` at `(h_{t-1}, x_t)`,

            J_t Q = J_rho(h_{t-1}) Q + coupling * diag(sigma'(a_t)) (W^T Q)

        computed without forming `J_t` (structured residuals cost O(N k)).

        Args:
            inputs: the step's inputs x_t, `(batch, features)`.
            states: `[h_{t-1}]` (or `h_{t-1}`), `(batch, units)`.
            tangents: `Q`, `(batch, units, k)`: k tangent vectors of the state.
            input_tangents: optional `(batch, features, k)` tangent vectors
                of the inputs (for stacked cells): their effect
                `coupling * diag(sigma'(a_t)) U^T X` is added.

        Returns:
            `([h_t], Z)` with `Z = J_t Q (+ the input term)`, `(batch, units, k)`.
        """
        prev = states[0] if isinstance(states, (list, tuple)) else states
        derivative = self._derivative()
        inputs = check.floating(ops.convert_to_tensor(inputs), self.compute_dtype)
        prev = ops.convert_to_tensor(prev)
        tangents = ops.convert_to_tensor(tangents)
        if not self.built:
            self.build(ops.shape(inputs))
        form = self._form(prev.dtype)
        h, y = _wcrnn_step.step(
            self._projection(inputs), prev, self.recurrent_kernel, self.coupling,
            self.activation, form,
        )
        projected = None
        if input_tangents is not None:
            projected = ops.einsum("fi,bfk->bik", self.kernel, input_tangents)
        Z = _wcrnn_step.tangent(
            tangents, prev, y, self.recurrent_kernel, self.coupling, derivative, form,
            input_tangent=projected,
        )
        return [h], Z

    def jacobian(self, inputs, states):
        """The step Jacobian d h_t / d h_{t-1} for a batch, in inference mode.

        J_t = J_rho(h_{t-1}) + coupling * diag(sigma'(a_t)) W^T, with
        `J[b, i, j] = d h_t[b, i] / d h_{t-1}[b, j]` (`tangent` gives `J_t Q`
        without forming it).

        Args:
            inputs: the step's inputs x_t, shape `(batch, features)`.
            states: h_{t-1}, shape `(batch, units)` (or `[h]`).

        Returns:
            A `(batch, units, units)` tensor.
        """
        prev = ops.convert_to_tensor(states[0] if isinstance(states, (list, tuple)) else states)
        eye = ops.broadcast_to(
            ops.eye(self.units, dtype=prev.dtype)[None], (ops.shape(prev)[0], self.units, self.units)
        )
        return self.tangent(inputs, states, eye)[1]

    def get_initial_state(self, batch_size=None):
        return [ops.zeros((batch_size, self.state_size), dtype=self.compute_dtype)]

    def get_config(self):
        config = {
            "units": self.units,
            "coupling": self.coupling,
            "residual": residuals_lib.serialize(self.residual),
            "activation": activations.serialize(self.activation),
            "use_bias": self.use_bias,
            "kernel_initializer": initializers.serialize(self.kernel_initializer),
            "recurrent_initializer": initializers.serialize(self.recurrent_initializer),
            "bias_initializer": initializers.serialize(self.bias_initializer),
            "kernel_regularizer": regularizers.serialize(self.kernel_regularizer),
            "recurrent_regularizer": regularizers.serialize(self.recurrent_regularizer),
            "bias_regularizer": regularizers.serialize(self.bias_regularizer),
            "kernel_constraint": constraints.serialize(self.kernel_constraint),
            "recurrent_constraint": constraints.serialize(self.recurrent_constraint),
            "bias_constraint": constraints.serialize(self.bias_constraint),
            "residual_trainable": self.residual_trainable,
            "dropout": self.dropout,
            "recurrent_dropout": self.recurrent_dropout,
            "seed": self.seed,
        }
        return {**super().get_config(), **config}
