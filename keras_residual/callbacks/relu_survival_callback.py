"""ReLUSurvivalCallback: ReLU survival rates measured during training."""

import keras
import numpy as np

from keras_residual import _validation as check
from keras_residual.callbacks import _epochs
from keras_residual.dynamics import survival as survival_lib


class ReLUSurvivalCallback(keras.callbacks.Callback):
    """Measures the survival rate of every ReLU at the end of epochs.

    At the end of every `every_n_epochs`-th epoch and of the last one (as
    `LyapunovCallback` does), runs the probe batch
    once through a probe model over the ReLU pre-activations (see
    `kr.dynamics.relu_survival`, inference mode), stores the per-ReLU rates
    in `rates[epoch]` and logs their mean and minimum as
    `relu_survival_mean` and `relu_survival_min` into `logs`, so they reach
    `History` (and any later callback). As with Keras' `validation_freq`,
    epochs that are not measured log nothing, and `History` lists then hold
    one value per measured epoch (`callback.epochs` says which).

    The probe model is built once, at the start of training, and compiled on
    its first use.

    Args:
        probe_inputs: a fixed probe batch (what the model takes).
        layers: `None` (every ReLU) or layer names / layers to restrict to.
        every_n_epochs: positive integer, measure every n-th epoch.

    Attributes:
        rates: `{epoch: {relu key: rate}}`, epochs 0-based as in Keras.
        epochs: the measured epochs, in order.

    Example:

    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(32, 8)).astype("float32")
    >>> y = rng.integers(0, 2, size=(32,))
    >>> model = keras.Sequential([
    ...     keras.Input((8,)),
    ...     keras.layers.Dense(8, activation="relu", name="hidden_1"),
    ...     keras.layers.Dense(8, activation="relu", name="hidden_2"),
    ...     keras.layers.Dense(2, name="logits")])
    >>> model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    >>> callback = kr.callbacks.ReLUSurvivalCallback(x[:16])
    >>> history = model.fit(x, y, epochs=2, verbose=0, callbacks=[callback])
    >>> len(history.history["relu_survival_min"])  # one value per epoch
    2
    >>> callback.epochs, list(callback.rates[1])  # one rate per ReLU
    ([0, 1], ['hidden_1', 'hidden_2'])
    >>> all(0.0 <= rate <= 1.0 for rate in callback.rates[1].values())
    True
    >>> ax = callback.plot()  # survival against depth, one line per epoch
    >>> len(ax.lines)
    2
    """

    def __init__(self, probe_inputs, layers=None, every_n_epochs=1):
        super().__init__()
        self.every_n_epochs = check.positive_int("every_n_epochs", every_n_epochs)
        if probe_inputs is None:
            raise ValueError("Argument `probe_inputs` must be a batch of inputs; received None.")
        self.probe_inputs = check.probe_batch("probe_inputs", probe_inputs)
        survival_lib.check_selection(layers)
        self.layers = layers
        self.rates = {}
        self.epochs = []
        self._probe = None
        self._probe_model = None

    def _get_probe(self):
        if self._probe is None or self._probe_model is not self.model:
            self._probe = survival_lib.SurvivalProbe(
                self.model, self.layers, inputs=self.probe_inputs
            )
            self._probe_model = self.model
        return self._probe

    def on_train_begin(self, logs=None):
        # Configuration errors (no ReLU, a probe the model cannot take)
        # surface here, before an epoch of training, not after it.
        probe = self._get_probe()
        try:
            probe.stats(self.probe_inputs, compiled=False)
        except Exception as error:  # noqa: BLE001 (re-raised with the argument named)
            shapes = [tuple(np.shape(leaf)) for leaf in keras.tree.flatten(self.probe_inputs)]
            raise ValueError(
                f"ReLUSurvivalCallback: model `{self.model.name}` cannot be run on "
                f"`probe_inputs` (shapes {shapes}): {error}"
            ) from error

    def measure(self):
        """The current survival rates, `{relu key: rate}` (no logging)."""
        stats = self._get_probe().stats(self.probe_inputs, compiled=True)
        return {key: survival for key, (survival, _, _) in stats.items()}

    def on_epoch_end(self, epoch, logs=None):
        if not _epochs.measured(epoch, self.every_n_epochs, self.params):
            return
        rates = self.measure()
        self.rates[epoch] = rates
        self.epochs.append(epoch)
        if logs is not None and rates:
            # A NaN rate (NaN pre-activations, warned about) makes both NaN.
            values = np.array(list(rates.values()))
            logs["relu_survival_mean"] = float(values.mean())
            logs["relu_survival_min"] = float(values.min())

    def plot(self, ax=None, keys=None, **plot_kwargs):
        """Survival against depth, one line per measured epoch.

        See `kr.dynamics.plot_survival`; returns the matplotlib axis.
        """
        return survival_lib.plot_survival(self.rates, ax=ax, keys=keys, **plot_kwargs)
