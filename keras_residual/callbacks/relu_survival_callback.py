"""ReLUSurvivalCallback: ReLU survival rates measured during training."""

import numbers

import numpy as np

import keras

from keras_residual.dynamics import survival as survival_lib


class ReLUSurvivalCallback(keras.callbacks.Callback):
    """Measures the survival rate of every ReLU at the end of epochs.

    At the end of every `every_n_epochs`-th epoch, runs the probe batch
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

    >>> callback = kr.callbacks.ReLUSurvivalCallback(x_train[:256])
    >>> history = model.fit(x_train, y_train, epochs=5, callbacks=[callback])
    >>> history.history["relu_survival_min"]
    [0.41, 0.43, ...]
    >>> callback.plot()   # survival against depth, one line per epoch
    """

    def __init__(self, probe_inputs, layers=None, every_n_epochs=1):
        super().__init__()
        if (
            isinstance(every_n_epochs, bool)
            or not isinstance(every_n_epochs, numbers.Integral)
            or every_n_epochs <= 0
        ):
            raise ValueError(
                "Argument `every_n_epochs` must be a positive integer; received "
                f"every_n_epochs={every_n_epochs!r}."
            )
        if probe_inputs is None:
            raise ValueError("Argument `probe_inputs` must be a batch of inputs; received None.")
        self.probe_inputs = probe_inputs
        self.layers = layers
        self.every_n_epochs = int(every_n_epochs)
        self.rates = {}
        self.epochs = []
        self._probe = None
        self._probe_model = None

    def _get_probe(self):
        if self._probe is None or self._probe_model is not self.model:
            survival_lib._prepare(self.model, self.probe_inputs)
            self._probe = survival_lib._Probe(self.model, self.layers)
            self._probe_model = self.model
        return self._probe

    def on_train_begin(self, logs=None):
        self._get_probe()

    def measure(self):
        """The current survival rates, `{relu key: rate}` (no logging)."""
        stats = self._get_probe().stats(self.probe_inputs, compiled=True)
        return {key: survival for key, (survival, _, _) in stats.items()}

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every_n_epochs:
            return
        rates = self.measure()
        self.rates[epoch] = rates
        self.epochs.append(epoch)
        if logs is not None and rates:
            values = np.array(list(rates.values()))
            logs["relu_survival_mean"] = float(values.mean())
            logs["relu_survival_min"] = float(values.min())

    def plot(self, ax=None, keys=None, **plot_kwargs):
        """Survival against depth, one line per measured epoch.

        See `kr.dynamics.plot_survival`; returns the matplotlib axis.
        """
        return survival_lib.plot_survival(self.rates, ax=ax, keys=keys, **plot_kwargs)
