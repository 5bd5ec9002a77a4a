"""GradientFlossing: keep a recurrent layer's Lyapunov exponents at targets during `fit`."""

import math
import warnings

import keras
import numpy as np

from keras_residual import _validation as check
from keras_residual.callbacks._recurrent_probe import RecurrentProbeCallback
from keras_residual.dynamics.lyapunov.layer import TRAJECTORY_GRADIENT
from keras_residual.dynamics.lyapunov.layer import LyapunovExponents
from keras_residual.dynamics.lyapunov.spectrum import check_settings


class GradientFlossing(RecurrentProbeCallback):
    """Gradient flossing during `fit`: pushes the top Lyapunov exponents of
    the model's recurrent layer toward targets while the task trains.

    Engelken (NeurIPS 2023, arXiv 2312.17306) regularises the finite-time
    Lyapunov exponents `lambda_i` of the forward dynamics toward targets
    (0: the edge of chaos) by descending the flossing loss

        L_floss = mean over sequences of sum_{i <= k} (lambda_i - target_i)^2

    through the QR iteration. Every `every_n_steps` training steps (until
    epoch `until_epoch`), this callback takes `steps` optimizer steps on
    `L_floss` along the probe batch, on the recurrent layer's weights (the
    same variables the task trains: `kr.layers.LyapunovExponents` shares
    them). The flossing optimizer is a fresh copy of the model's (its
    class and configuration) whose learning rate is `weight` times the
    model's; with plain gradient descent such an interleaved step is the
    step of `task loss + weight * L_floss`, to first order in the learning
    rate. Interleaving, rather than a loss added inside the model, keeps
    the model as the user built it and lets flossing stop at an epoch.

    After each epoch it logs `flossing_loss` (the mean of the epoch's
    flossing losses, each before its update) into `logs` (so `History` has
    it). A flossing step whose loss is not finite (overflowing dynamics),
    or whose update leaves a weight of the recurrent layer non-finite
    (a finite loss can have overflowing gradients, e.g. through the
    trajectory of a chaotic net), is undone with a warning, never raising
    inside `fit`; its loss is logged as it is.

    The exponents are computed in float32 under any dtype policy (as
    `kr.layers.LyapunovExponents` does), so flossing works in a
    mixed-precision model; a `LossScaleOptimizer` of the model is copied
    without its loss scaling, which float32 gradients do not need.

    Args:
        probe_inputs: a batch of model inputs the exponents are measured
            along (mapped through every layer before the recurrent one, as
            in `LyapunovCallback`), or the layer's own `(batch, timesteps,
            features)` inputs with `probe_is_layer_input=True`.
        num_exponents: k, the number of leading exponents flossed (>= 1).
        targets: one real number for every exponent, or `k` of them (e.g. a
            WCRNN's `cell.residual.analytic_exponents()[:k]`).
        weight: positive real, the flossing learning rate over the model's.
        every_n_steps: floss after every this many training steps (>= 1).
        until_epoch: `None` (always), or the first epoch (0-based) without
            flossing.
        steps: optimizer steps per flossing (>= 1).
        layer: the recurrent layer: `None`, a name, or the layer.
        warmup, qr_interval, seed: as in `kr.layers.LyapunovExponents`.
        trajectory_gradient: as in `kr.layers.LyapunovExponents` (the same
            default, `False`).
        optimizer: `None` (a copy of the model's, as above) or a Keras
            optimizer (identifier or instance) used as it is.
        probe_is_layer_input: see `probe_inputs`.

    Attributes:
        losses: the flossing loss of every flossing, in order.
        flossing_steps: the training step after which each was taken.

    Example:

    >>> x = np.random.default_rng(0).normal(size=(16, 20, 2)).astype("float32")
    >>> y = x[:, 0, :1]
    >>> model = keras.Sequential([
    ...     keras.Input((20, 2)),
    ...     keras.layers.SimpleRNN(
    ...         8, recurrent_initializer=keras.initializers.Orthogonal(gain=2.0, seed=1)),
    ...     keras.layers.Dense(1)])
    >>> model.compile(keras.optimizers.Adam(1e-2), "mse")
    >>> flossing = kr.callbacks.GradientFlossing(x[:4], num_exponents=2, every_n_steps=2)
    >>> history = model.fit(x, y, batch_size=4, epochs=1, verbose=0, callbacks=[flossing])
    >>> len(flossing.losses), "flossing_loss" in history.history
    (2, True)
    """

    def __init__(
        self,
        probe_inputs,
        num_exponents=1,
        targets=0.0,
        weight=1.0,
        every_n_steps=1,
        until_epoch=None,
        steps=1,
        layer=None,
        warmup=0,
        qr_interval=1,
        seed=None,
        optimizer=None,
        probe_is_layer_input=False,
        trajectory_gradient=TRAJECTORY_GRADIENT,
    ):
        super().__init__(probe_inputs, layer, probe_is_layer_input)
        self.num_exponents = check.positive_int("num_exponents", num_exponents)
        if check.is_real(targets):
            self.targets = check.real("targets", targets)
        else:
            values = check.reals("targets", targets)
            if len(values) != self.num_exponents:
                raise ValueError(
                    f"Argument `targets` must be one number or num_exponents={self.num_exponents} "
                    f"of them; received {len(values)} targets."
                )
            self.targets = values
        self.weight = check.positive_real("weight", weight)
        self.every_n_steps = check.positive_int("every_n_steps", every_n_steps)
        self.until_epoch = check.integer("until_epoch", until_epoch, minimum=0, allow_none=True)
        self.steps = check.positive_int("steps", steps)
        settings = check_settings(
            self.num_exponents, warmup, qr_interval, seed, steps=self.probe_steps
        )
        if settings["qr_interval"] == "auto":
            raise ValueError(
                "Argument `qr_interval` of GradientFlossing must be an integer >= 1; "
                "received qr_interval='auto'."
            )
        self.warmup, self.qr_interval, self.seed = settings["warmup"], settings["qr_interval"], seed
        if optimizer is not None and not isinstance(optimizer, keras.optimizers.Optimizer):
            if not isinstance(optimizer, (str, dict)):
                raise check.ArgumentTypeError(
                    "Argument `optimizer` must be None (a copy of the model's), a Keras "
                    "optimizer, its name or its config; received "
                    f"optimizer={optimizer!r} of type {type(optimizer).__name__}."
                )
            try:
                keras.optimizers.get(optimizer)
            except ValueError as error:
                raise ValueError(
                    f"Argument `optimizer` names no Keras optimizer: optimizer={optimizer!r} "
                    f"({error})"
                ) from error
        self.optimizer = optimizer
        self.trajectory_gradient = check.boolean("trajectory_gradient", trajectory_gradient)
        self.losses = []
        self.flossing_steps = []
        self._floss_model = None
        self._sequences = None
        self._target_batch = None
        self._epoch = 0
        self._step = 0
        self._epoch_losses = []
        self._warned = False

    # ------------------------------------------------------------------ setup
    def _flossing_optimizer(self):
        if self.optimizer is not None:
            return keras.optimizers.get(self.optimizer)
        task = self.model.optimizer
        if task is None:
            return keras.optimizers.Adam(1e-3 * self.weight)
        if isinstance(task, keras.optimizers.LossScaleOptimizer):
            task = task.inner_optimizer
        config = task.get_config()
        rate = config.get("learning_rate")
        if isinstance(rate, dict) or not check.is_real(rate):
            rate = float(keras.ops.convert_to_numpy(task.learning_rate))
        config["learning_rate"] = float(rate) * self.weight
        return type(task).from_config(config)

    def on_train_begin(self, logs=None):
        layer_inputs = self._attach()
        sequences = layer_inputs.sequences
        self._sequences = sequences
        # Mismatches between the arguments and what the probe gives the
        # layer are errors now, before the first training step.
        try:
            check_settings(
                self.num_exponents, self.warmup, self.qr_interval, self.seed,
                steps=sequences.shape[1],
            )
        except ValueError as error:
            raise ValueError(
                f"{self._name}: the probe gives layer {self._rnn.name!r} sequences of "
                f"{sequences.shape[1]} steps; {error}"
            ) from error
        dtype = "float64" if self._rnn.cell.compute_dtype == "float64" else "float32"
        inputs = keras.Input(sequences.shape[1:], dtype=dtype)
        exponents = LyapunovExponents(
            self._rnn, num_exponents=self.num_exponents, warmup=self.warmup,
            qr_interval=self.qr_interval, seed=self.seed,
            trajectory_gradient=self.trajectory_gradient, name="flossed_exponents",
            dtype=dtype,
        )
        if self.num_exponents > exponents.state_size:
            check.integer(
                "num_exponents", self.num_exponents, minimum=1, maximum=exponents.state_size,
                allowed=f"an integer in [1, state size = {exponents.state_size}]",
            )
        self._floss_model = keras.Model(inputs, exponents(inputs), name="gradient_flossing")
        # Keras' MSE averages over the k exponents as well: times k it is the
        # sum over i, the flossing loss of the paper.
        k = self.num_exponents
        self._floss_model.compile(
            optimizer=self._flossing_optimizer(),
            loss=lambda target, value: k * keras.ops.mean(keras.ops.square(value - target), axis=-1),
        )
        targets = np.broadcast_to(np.asarray(self.targets, "float32"), (k,))
        self._target_batch = np.broadcast_to(targets, (sequences.shape[0], k)).copy()
        self._step = 0

    # ------------------------------------------------------------------ flossing
    def _floss(self):
        # `self.model` first: on JAX that writes the trainer's state into the
        # variables (and the next train step reads them back), so flossing
        # starts from the task's latest weights and the task continues from
        # the flossed ones.
        self.model  # noqa: B018
        optimizer = self._floss_model.optimizer
        for _ in range(self.steps):
            weights = self._rnn.get_weights()
            slots = [np.array(keras.ops.convert_to_numpy(v)) for v in optimizer.variables]
            loss = self._floss_model.train_on_batch(self._sequences, self._target_batch)
            loss = float(np.asarray(loss).reshape(-1)[0])
            if not math.isfinite(loss):
                # The loss (computed before the update) was not finite: so
                # are its gradients.
                problem = (f"the flossing loss of layer {self._rnn.name!r} is {loss} (its "
                           "dynamics overflow along the probe)")
            elif not all(np.all(np.isfinite(w)) for w in self._rnn.get_weights()):
                # A finite loss with gradients that overflowed.
                problem = (f"a flossing update left weights of layer {self._rnn.name!r} "
                           f"non-finite (its gradient overflowed; the loss was {loss:.4g})")
            else:
                continue
            self._rnn.set_weights(weights)
            for variable, value in zip(optimizer.variables, slots):
                variable.assign(value)
            if not self._warned:
                warnings.warn(
                    f"GradientFlossing: {problem}; the update is undone.",
                    RuntimeWarning,
                    stacklevel=2,
                )
                self._warned = True
            break
        self.losses.append(loss)
        self.flossing_steps.append(self._step)
        self._epoch_losses.append(loss)

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        self._epoch_losses = []

    def on_train_batch_end(self, batch, logs=None):
        self._step += 1
        if self.until_epoch is not None and self._epoch >= self.until_epoch:
            return
        if self._step % self.every_n_steps == 0:
            self._floss()

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None and self._epoch_losses:
            logs["flossing_loss"] = float(np.mean(self._epoch_losses))
