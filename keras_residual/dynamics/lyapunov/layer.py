"""LyapunovExponents: the finite-time Lyapunov exponents of a recurrent layer, as a layer."""

import contextlib

import keras
import numpy as np
from keras import ops

from keras_residual import _validation as check
from keras_residual._keras_compat import autocast_off
from keras_residual.dynamics.lyapunov import cells
from keras_residual.dynamics.lyapunov import loop
from keras_residual.dynamics.lyapunov import tangents as tangents_lib
from keras_residual.dynamics.lyapunov._backends import get_backend
from keras_residual.dynamics.lyapunov.carry import initial_carry
from keras_residual.dynamics.lyapunov.spectrum import check_settings


# The default of `trajectory_gradient` here and in `GradientFlossing`: chosen
# by benchmarks/flossing_default.py (BENCHMARKS.md, "which
# `trajectory_gradient` flosses best"): without the trajectory's gradient,
# flossing a chaotic SimpleRNN or a WCRNN ended at a 10x lower flossing loss
# in 5 of 5 seeds; on a stable SimpleRNN and an LSTM the two were level.
TRAJECTORY_GRADIENT = False


@keras.saving.register_keras_serializable(package="keras_residual")
class LyapunovExponents(keras.layers.Layer):
    """The finite-time Lyapunov exponents of a recurrent layer along its inputs.

    Called on input sequences, returns each sequence's `k` leading
    finite-time exponents of the wrapped layer's dynamics (the QR algorithm
    of `kr.dynamics.lyapunov_spectrum`, same initial frame, same numbers as
    its `per_sequence`), and is differentiable with respect to the wrapped
    layer's weights on every backend: the loop is one `keras.ops.scan` of
    the cell's tangent map (analytic for `WCRNNCell` and Keras'
    `SimpleRNNCell`, `GRUCell`, `LSTMCell`, `StackedRNNCells`; forward-mode
    autodiff otherwise) and of a differentiable Householder QR. The wrapped
    layer is shared, never copied: training a model around this layer
    changes that layer's weights. This is gradient flossing (Engelken,
    NeurIPS 2023, arXiv 2312.17306): a model
    `keras.Model(x, LyapunovExponents(rnn, k)(x))` trained with a mean
    squared error toward target exponents pushes `rnn`'s exponents there.

    Args:
        layer: a recurrent layer (`keras.layers.RNN`: `kr.layers.WCRNN`,
            `keras.layers.SimpleRNN`, `LSTM`, `GRU`, ...) or an RNN cell,
            built or not.
        num_exponents: k, `None` (all) or an integer in [1, state size].
        warmup: steps before the logs are accumulated (>= 0, less than the
            sequences' length).
        qr_interval: steps between QRs (an integer >= 1; QR every step by
            default, which keeps the gradient of the QR well defined).
        seed: seed of the initial orthogonal frame (`None` means 0).
        trajectory_gradient: whether the gradient also flows through the
            state trajectory h_t (`True`: the exact gradient of the
            finite-time exponents). `False` (default) stops it at each
            step's state: the gradient then sees how the weights change the
            Jacobians along a fixed trajectory, which is cheaper and far
            less rugged for a chaotic network, where the gradient through
            the trajectory grows like exp(lambda_1 T). Measured (BENCHMARKS.md,
            "which `trajectory_gradient` flosses best", 5 seeds): `False`
            flossed a chaotic SimpleRNN and a WCRNN to a 10x lower loss,
            and a stable SimpleRNN and an LSTM as well as `True`.

    Call arguments:
        inputs: the wrapped layer's input sequences `(batch, timesteps,
            features)`.
        training: ignored: the dynamics are always those of inference mode
            (no dropout), in training as in evaluation.

    Returns:
        `(batch, k)` exponents per sequence, sorted descending (natural
        log per step), in the layer's compute dtype. An empty batch gives
        an empty `(0, k)` result, as Keras' layers do.

    Example:

    >>> rnn = keras.layers.SimpleRNN(8)
    >>> x = np.random.default_rng(0).normal(size=(4, 30, 2)).astype("float32")
    >>> exponents = kr.layers.LyapunovExponents(rnn, num_exponents=3)(x)
    >>> tuple(exponents.shape)
    (4, 3)
    """

    def __init__(
        self, layer, num_exponents=None, warmup=0, qr_interval=1, seed=None,
        trajectory_gradient=TRAJECTORY_GRADIENT, **kwargs,
    ):
        super().__init__(**kwargs)
        # The loop picks its own precision (float32 or float64): inputs are
        # not cast to a half-precision compute dtype on the way in, and
        # `call` reads the variables outside any autocast scope.
        self.autocast = False
        if isinstance(layer, dict):
            layer = keras.saving.deserialize_keras_object(layer)
        self.cell, self.go_backwards = cells.resolve_cell(layer)
        self.layer = layer
        settings = check_settings(num_exponents, warmup, qr_interval, seed)
        if settings["qr_interval"] == "auto":
            raise ValueError(
                "Argument `qr_interval` of LyapunovExponents must be an integer >= 1 (a "
                "differentiable loop has a fixed schedule); received qr_interval='auto'."
            )
        self.num_exponents = settings["num_exponents"]
        self.warmup = settings["warmup"]
        self.qr_interval = settings["qr_interval"]
        self.seed = seed
        self.trajectory_gradient = check.boolean("trajectory_gradient", trajectory_gradient)
        self._seed = settings["seed"]
        self._layout = cells.StateLayout(self.cell)
        self.state_size = self._layout.size
        if self.num_exponents is not None and self.num_exponents > self.state_size:
            check.integer(
                "num_exponents", self.num_exponents, minimum=1, maximum=self.state_size,
                allowed=f"None or an integer in [1, state size = {self.state_size}]",
            )
        # float64 for a float64 cell, else float32 (mixed policies included).
        self._loop_dtype = "float64" if self.cell.compute_dtype == "float64" else "float32"
        self.jacobian = "analytic" if tangents_lib.tangent_map(self.cell) is not None else "autodiff"
        self._step = None

    def _work_cell(self):
        """The cell that the loop steps: the wrapped cell, or its copy in the
        loop's dtype (kept in `lyapunov`'s cache, not tracked by this layer,
        so that its variables are never this layer's weights)."""
        return cells.cell_in_dtype(self.cell, self._loop_dtype)

    @property
    def k(self):
        return self.num_exponents or self.state_size

    def build(self, input_shape):
        if len(input_shape) != 3:
            raise ValueError(
                f"LyapunovExponents takes sequences (batch, timesteps, features); received "
                f"input_shape={tuple(input_shape)}."
            )
        if not self.layer.built:
            self.layer.build(tuple(input_shape))
        step_shape = tuple(input_shape[:1]) + tuple(input_shape[2:])
        if not self.cell.built:
            self.cell.build(step_shape)
        work = self._work_cell()
        if not work.built:
            work.build(step_shape)
        cells.check_clone(self.cell, work, self._loop_dtype)
        # One step on zeros, eagerly: inputs the cell cannot take, and a
        # tangent map that returns the wrong shapes, are errors now.
        features = input_shape[-1]
        if features is None:
            raise ValueError(
                "LyapunovExponents needs the number of input features; received "
                f"input_shape={tuple(input_shape)}."
            )
        x = np.zeros((1, features), self._loop_dtype)
        h = np.zeros((1, self.state_size), self._loop_dtype)
        with autocast_off():
            cells.call_checked(work, x, h, self._layout)
            if tangents_lib.tangent_map(work) is not None:
                cells.check_tangent(work, x, h, self._layout, self.k)
        # Later calls with another number of features are refused by Keras.
        self.input_spec = keras.layers.InputSpec(ndim=3, axes={-1: features})

    def _step_function(self):
        if self._step is None:
            work = self._work_cell()
            mode = "analytic" if tangents_lib.tangent_map(work) is not None else "autodiff"
            self._step = loop.step_function(
                work, self._layout, mode, "householder", self.qr_interval, get_backend(),
                self._loop_dtype, state_gradient=self.trajectory_gradient,
            )
        return self._step

    def call(self, inputs, training=None):
        with autocast_off():
            exponents = self._exponents(inputs)
        return ops.cast(exponents, self.compute_dtype)

    def _exponents(self, inputs):
        dtype = self._loop_dtype
        inputs = check.floating(inputs, dtype)
        inputs = ops.cast(inputs, dtype)
        steps = check.time_steps("inputs", inputs.shape)
        if steps is None:
            raise ValueError(
                "LyapunovExponents needs sequences of a known length (the loop's schedule "
                f"and its average depend on it); received inputs of shape {inputs.shape}."
            )
        if not 0 <= self.warmup < steps:
            raise ValueError(
                f"Argument `warmup` must be an integer in [0, timesteps - 1 = {steps - 1}]; "
                f"received warmup={self.warmup}."
            )
        if inputs.shape[0] == 0:  # an empty batch: an empty result, as Keras' layers give
            return ops.zeros((0, self.k), dtype=dtype)
        xs = ops.transpose(inputs, (1, 0, 2))
        if self.go_backwards:
            xs = ops.flip(xs, axis=0)
        batch = ops.shape(inputs)[0]
        h0 = ops.zeros((batch, self.state_size), dtype=dtype)
        carry = initial_carry(h0, self.k, self._seed, dtype, dtype)
        step = self._step_function()
        ts = ops.arange(1, steps + 1, dtype="int32")

        def scan_step(carry, inputs_t):
            x, t = inputs_t
            return step(carry, x, t, self.warmup, steps), None

        work = self._work_cell()
        scope = contextlib.nullcontext()
        if work is not self.cell:
            scope = keras.StatelessScope(
                state_mapping=cells.clone_mapping(self.cell, work, dtype)
            )
        with scope:
            carry, _ = ops.scan(scan_step, carry, (xs, ts))
        exponents = carry.sums / float(steps - self.warmup)
        return -ops.sort(-exponents, axis=-1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.k)

    def get_config(self):
        return {
            **super().get_config(),
            "layer": keras.saving.serialize_keras_object(self.layer),
            "num_exponents": self.num_exponents,
            "warmup": self.warmup,
            "qr_interval": self.qr_interval,
            "seed": self.seed,
            "trajectory_gradient": self.trajectory_gradient,
        }

