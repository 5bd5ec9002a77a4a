"""LyapunovCallback: the Lyapunov spectrum of a model's RNN during `fit`."""

import math
import warnings

import keras
import numpy as np

from keras_residual.dynamics import lyapunov as lyapunov_lib


def recurrent_layers(model):
    """Every `keras.layers.RNN` inside a model (nested models and wrappers
    such as `Bidirectional` included), in depth-first order."""
    found, seen = [], set()

    def visit(layer):
        if id(layer) in seen:
            return
        seen.add(id(layer))
        if isinstance(layer, keras.layers.RNN):
            found.append(layer)
            return
        children = []
        if isinstance(layer, keras.layers.Bidirectional):
            children = [layer.forward_layer, layer.backward_layer]
        elif hasattr(layer, "layer") and isinstance(layer.layer, keras.layers.Layer):
            children = [layer.layer]
        elif isinstance(layer, keras.Model) or hasattr(layer, "layers"):
            children = list(getattr(layer, "layers", []) or [])
        for child in children:
            visit(child)

    for layer in getattr(model, "layers", []) or []:
        visit(layer)
    return found


class LyapunovCallback(keras.callbacks.Callback):
    """Tracks the Lyapunov spectrum of a model's recurrent layer during `fit`.

    Before training (recorded as epoch -1) and at the end of every
    `every_n_epochs`-th epoch (and of the last one), computes
    `kr.dynamics.lyapunov_spectrum` of the model's recurrent layer driven by
    `probe_inputs`, and writes three floats into the epoch's `logs`, so they
    appear in the progress bar and in `History`:

    - `{prefix}_max`: the largest exponent (> 0: chaotic, ~0: critical,
      < 0: fading memory),
    - `{prefix}_mean`: the mean of the k exponents,
    - `{prefix}_ky_dim`: the Kaplan–Yorke dimension.

    On epochs it skips, the most recent values are repeated (see `epochs`
    for when they were measured). Every spectrum is kept: `spectra` is an
    `(evaluations, k)` array and `epochs` the matching epoch numbers, ready
    for `kr.dynamics.plot_spectra(callback)`. A network whose state
    overflows gives non-finite figures (with a warning), never an exception
    inside `fit`.

    Args:
        probe_inputs: `(batch, timesteps, features)` array of model inputs
            that drive the network (a few sequences are enough: 8 to 32).
            When the recurrent layer is not the first layer of a functional
            or Sequential model, they go through the layers before it.
        layer: the recurrent layer: `None` (found automatically when the
            model has exactly one `keras.layers.RNN`), its name, or the
            layer itself.
        num_exponents: k, as in `lyapunov_spectrum` (`None`: all).
        warmup: steps before accumulating, `0 <= warmup < timesteps`.
        qr_interval: steps between re-orthonormalisations, or `"auto"`
            (default here, unlike `lyapunov_spectrum`: it keeps the callback
            within a few percent of an epoch; exact in exact arithmetic, and
            it falls back to a QR every step when the spectrum is wide).
        every_n_epochs: compute every this many epochs (>= 1).
        prefix: prefix of the log keys (a non-empty string).
        initial_state, seed, dtype: as in `lyapunov_spectrum`.
        verbose: 1 prints the spectrum's summary at each evaluation.

    Attributes:
        spectra: `(evaluations, k)` NumPy array, one sorted spectrum per row.
        epochs: the epoch of each row (-1 is before training).
        results: the `LyapunovSpectrum` objects.

    Example:

    >>> model = keras.Sequential([
    ...     keras.Input((784, 1)),
    ...     kr.layers.WCRNN(64, residual=kr.residuals.Rotational(angle=2 * np.pi / 28)),
    ...     keras.layers.Dense(10, activation="softmax")])
    >>> model.compile("adam", "sparse_categorical_crossentropy")
    >>> callback = kr.callbacks.LyapunovCallback(x_train[:16])
    >>> history = model.fit(x_train, y_train, epochs=5, callbacks=[callback])
    >>> history.history["lyapunov_max"]      # one float per epoch
    >>> callback.spectra.shape               # (6, 64): epochs -1, 0, ..., 4
    """

    def __init__(
        self,
        probe_inputs,
        layer=None,
        num_exponents=None,
        warmup=0,
        qr_interval="auto",
        every_n_epochs=1,
        prefix="lyapunov",
        initial_state=None,
        seed=None,
        dtype=None,
        verbose=0,
    ):
        super().__init__()
        probe = np.asarray(keras.ops.convert_to_numpy(probe_inputs))
        if probe.ndim != 3 or min(probe.shape) == 0:
            raise ValueError(
                "Argument `probe_inputs` must be a non-empty (batch, timesteps, features) "
                f"array; received shape {probe.shape}."
            )
        steps = probe.shape[1]
        if layer is not None and not isinstance(layer, (str, keras.layers.Layer)):
            raise TypeError(
                "Argument `layer` must be None, a layer name or a keras.layers.RNN layer; "
                f"received {layer!r} of type {type(layer).__name__}."
            )
        if num_exponents is not None:
            lyapunov_lib._check_int("num_exponents", num_exponents, 1, None, "None or an integer >= 1")
        lyapunov_lib._check_int(
            "warmup", warmup, 0, steps - 1, f"an integer in [0, timesteps - 1 = {steps - 1}]"
        )
        if qr_interval != "auto":
            lyapunov_lib._check_int("qr_interval", qr_interval, 1, None, 'an integer >= 1 or "auto"')
        lyapunov_lib._check_int("every_n_epochs", every_n_epochs, 1, None, "an integer >= 1")
        if not isinstance(prefix, str) or not prefix:
            raise ValueError(f"Argument `prefix` must be a non-empty string; received prefix={prefix!r}.")
        self.probe_inputs = probe
        self.layer = layer
        self.num_exponents = num_exponents
        self.warmup = warmup
        self.qr_interval = qr_interval
        self.every_n_epochs = every_n_epochs
        self.prefix = prefix
        self.initial_state = initial_state
        self.seed = seed
        self.dtype = dtype
        self.verbose = verbose
        self.results = []
        self._epochs = []
        self._rnn = None
        self._feature_model = None
        self._last_logs = None

    # ------------------------------------------------------------------ state
    @property
    def spectra(self):
        """`(evaluations, k)` array of the spectra (rows sorted descending)."""
        if not self.results:
            return np.zeros((0, self.num_exponents or 0))
        return np.stack([r.exponents for r in self.results])

    @property
    def epochs(self):
        """The epoch of each row of `spectra` (-1: before training)."""
        return np.asarray(self._epochs, dtype="int64")

    # ------------------------------------------------------------------ layer
    def _find_layer(self):
        model = self.model
        if isinstance(self.layer, keras.layers.Layer):
            layer = self.layer
        elif isinstance(self.layer, str):
            try:
                layer = model.get_layer(self.layer)
            except ValueError as error:
                names = [l.name for l in recurrent_layers(model)]
                raise ValueError(
                    f"LyapunovCallback: the model has no layer named {self.layer!r}; its "
                    f"recurrent layers are {names}."
                ) from error
        else:
            candidates = recurrent_layers(model)
            if len(candidates) != 1:
                names = [l.name for l in candidates]
                raise ValueError(
                    f"LyapunovCallback needs exactly one recurrent layer (keras.layers.RNN) in "
                    f"the model, or `layer=`; model {model.name!r} has {len(candidates)}: "
                    f"{names}. Pass layer=<one of these names>."
                )
            layer = candidates[0]
        if not isinstance(layer, keras.layers.RNN) and not hasattr(layer, "state_size"):
            raise TypeError(
                f"LyapunovCallback: layer {layer.name!r} ({type(layer).__name__}) is not a "
                "recurrent layer (keras.layers.RNN) or an RNN cell."
            )
        return layer

    def _layer_inputs(self):
        """The probe, mapped through the layers before the recurrent one."""
        if self._feature_model is False:
            return self.probe_inputs
        if self._feature_model is None:
            self._feature_model = False
            try:
                layer_input = self._rnn.input
                model_inputs = self.model.inputs
            except (AttributeError, ValueError):
                return self.probe_inputs
            if not model_inputs or any(layer_input is i for i in model_inputs):
                return self.probe_inputs
            try:
                inputs = model_inputs[0] if len(model_inputs) == 1 else model_inputs
                self._feature_model = keras.Model(inputs, layer_input)
            except Exception:  # noqa: BLE001 (not a functional graph: use the probe as is)
                return self.probe_inputs
        return keras.ops.convert_to_numpy(self._feature_model(self.probe_inputs, training=False))

    # ------------------------------------------------------------------ work
    def _compute(self):
        return lyapunov_lib.lyapunov_spectrum(
            self._rnn,
            self._layer_inputs(),
            num_exponents=self.num_exponents,
            warmup=self.warmup,
            qr_interval=self.qr_interval,
            initial_state=self.initial_state,
            seed=self.seed,
            dtype=self.dtype,
        )

    def _record(self, epoch, spectrum):
        self.results.append(spectrum)
        self._epochs.append(epoch)
        values = {
            f"{self.prefix}_max": spectrum.max,
            f"{self.prefix}_mean": spectrum.mean,
            f"{self.prefix}_ky_dim": spectrum.kaplan_yorke_dimension,
        }
        self._last_logs = values
        if self.verbose:
            print(
                f"LyapunovCallback epoch {epoch}: max {spectrum.max:.4f}, mean "
                f"{spectrum.mean:.4f}, Kaplan-Yorke dimension "
                f"{spectrum.kaplan_yorke_dimension:.2f} ({spectrum.seconds:.2f} s)"
            )
        return values

    def on_train_begin(self, logs=None):
        self._rnn = self._find_layer()
        self._feature_model = None
        # Configuration errors surface here, before any epoch runs.
        self._record(-1, self._compute())

    def on_epoch_end(self, epoch, logs=None):
        last = self.params.get("epochs") if self.params else None
        due = (epoch + 1) % self.every_n_epochs == 0 or (last is not None and epoch + 1 == last)
        if due or self._last_logs is None:
            try:
                values = self._record(epoch, self._compute())
            except Exception as error:  # noqa: BLE001 (never break `fit`)
                warnings.warn(
                    f"LyapunovCallback: the spectrum at epoch {epoch} failed ({error!r}); "
                    "recording NaN.",
                    RuntimeWarning,
                    stacklevel=2,
                )
                k = self.results[-1].num_exponents if self.results else 1
                values = {
                    f"{self.prefix}_max": math.nan,
                    f"{self.prefix}_mean": math.nan,
                    f"{self.prefix}_ky_dim": math.nan,
                }
                self.results.append(_nan_spectrum(self.results[-1] if self.results else None, k))
                self._epochs.append(epoch)
                self._last_logs = values
        else:
            values = self._last_logs
        if logs is not None:
            logs.update({key: float(value) for key, value in values.items()})


def _nan_spectrum(template, k):
    nan = np.full((k,), np.nan)
    batch = template.per_sequence.shape[0] if template is not None else 1
    return lyapunov_lib.LyapunovSpectrum(
        exponents=nan,
        per_sequence=np.full((batch, k), np.nan),
        num_exponents=k,
        state_size=template.state_size if template is not None else k,
        steps=template.steps if template is not None else 0,
        warmup=template.warmup if template is not None else 0,
        qr_interval=template.qr_interval if template is not None else 1,
        seed=template.seed if template is not None else 0,
        dtype=template.dtype if template is not None else "float32",
        jacobian=template.jacobian if template is not None else "none",
        qr_method=template.qr_method if template is not None else "none",
        backend=keras.backend.backend(),
    )
