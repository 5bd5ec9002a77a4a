"""LyapunovCallback: the Lyapunov spectrum of a model's RNN during `fit`."""

import os
import warnings

import keras
import numpy as np

from keras_residual import _keras_compat as compat
from keras_residual import _validation as check
from keras_residual.callbacks import _epochs
from keras_residual.callbacks import _feature_path
from keras_residual.callbacks._recurrent_probe import RecurrentProbeCallback
from keras_residual.dynamics.lyapunov.result import LyapunovSpectrum
from keras_residual.dynamics.lyapunov.spectrum import check_settings
from keras_residual.dynamics.lyapunov.spectrum import lyapunov_spectrum


def recurrent_layers(model):
    """Every `keras.layers.RNN` inside a model (nested models and wrappers
    such as `Bidirectional` included), in depth-first order."""
    return [layer for _, layer in _feature_path.recurrent_entries(model)]


class LyapunovCallback(RecurrentProbeCallback):
    """Tracks the Lyapunov spectrum of a model's recurrent layer during `fit`.

    Before training (recorded as epoch -1) and at the end of every
    `every_n_epochs`-th epoch and of the last one, computes
    `kr.dynamics.lyapunov_spectrum` of the model's recurrent layer driven by
    `probe_inputs`, and writes three floats into the logs of each measured
    epoch, so they appear in the progress bar and in `History`:

    - `{prefix}_max`: the largest exponent (> 0: chaotic, ~0: critical,
      < 0: fading memory),
    - `{prefix}_mean`: the mean of the k exponents,
    - `{prefix}_ky_dim`: the Kaplan–Yorke dimension.

    As with Keras' `validation_freq` (and `ReLUSurvivalCallback`), epochs
    that are not measured log nothing: `History` then holds one value per
    measured epoch, and `epochs` says which. Every spectrum is kept: `spectra` is an
    `(evaluations, k)` array and `epochs` the matching epoch numbers, ready
    for `kr.dynamics.plot_spectra(callback)`. A network whose state
    overflows gives non-finite figures (with a warning), never an exception
    inside `fit`.

    The probe is a batch of the model's own inputs (token ids for a model
    that starts with an `Embedding`, a list or dict of arrays for a model
    with several inputs). At every measurement it goes through all the
    layers before the recurrent one, in the model and in every Functional or
    Sequential sub-model that encloses it (nested to any depth), in
    inference mode: the recurrent layer receives exactly what it receives in
    `model.predict`, including the initial state the model gives it. A
    probe the model does not accept, one whose steps the model masks (the
    spectrum cannot skip steps), and a recurrent layer whose inputs cannot
    be traced from the model's inputs (inside a subclassed model or a
    wrapper other than `Bidirectional`, or called at several places) raise
    an error from `on_train_begin`, before the first epoch, saying so; then
    pass the recurrent layer's own inputs with `probe_is_layer_input=True`.

    When a `keras.callbacks.TensorBoard` callback takes part in the same
    `fit`, every measurement is also written to its log directory's `train`
    run (beside the loss), at step = epoch (-1 before training): scalars
    `{prefix}/max`, `{prefix}/mean`, `{prefix}/ky_dim` and a histogram
    `{prefix}/exponents` of the spectrum. Keras 3 gives a callback no public
    handle on the other callbacks of a `fit`, so with `tensorboard="auto"`
    the callback looks for one in the `keras.callbacks.CallbackList` that
    calls its `on_train_begin`; pass `tensorboard=` to say which explicitly.
    Writing needs TensorFlow (under any Keras backend), not the
    `tensorboard` package.

    Args:
        probe_inputs: a batch of model inputs that drive the network (a few
            sequences are enough: 8 to 32): an array or tensor of any rank
            and dtype the model accepts, or a list or dict of them for a
            model with several inputs. With `probe_is_layer_input=True`,
            a `(batch, timesteps, features)` array given to the recurrent
            layer as it is.
        layer: the recurrent layer: `None` (found automatically when the
            model has exactly one `keras.layers.RNN`, nested models and
            `Bidirectional` included), its name, its path when several
            recurrent layers share a name (e.g. `"encoder/lstm"`), or the
            layer itself. The two directions of a `Bidirectional` are
            `"forward_<name>"` and `"backward_<name>"` (the backward one
            runs time-reversed, as in the model). The names an error lists
            are the names this argument takes.
        num_exponents: k, as in `lyapunov_spectrum` (`None`: all).
        warmup: steps before accumulating, `0 <= warmup < timesteps` (the
            timesteps of the recurrent layer's inputs).
        qr_interval: steps between re-orthonormalisations, or `"auto"`
            (default here, unlike `lyapunov_spectrum`: it keeps the callback
            within a few percent of an epoch; exact in exact arithmetic, and
            it falls back to a QR every step when the spectrum is wide).
        every_n_epochs: compute every this many epochs (>= 1).
        prefix: prefix of the log keys (a non-empty string).
        initial_state: as in `lyapunov_spectrum`; `None` uses the initial
            state the model gives the layer (zeros when it gives none). It
            cannot be combined with a model that gives one.
        seed, dtype: as in `lyapunov_spectrum`.
        verbose: 1 prints the spectrum's summary at each evaluation.
        probe_is_layer_input: `True` when `probe_inputs` are the recurrent
            layer's own inputs, `(batch, timesteps, features)`, rather than
            the model's (for models whose graph cannot be followed, such as
            subclassed models).
        tensorboard: `"auto"` (write to the log directory of a
            `keras.callbacks.TensorBoard` callback of the same `fit`, if
            there is one), a `keras.callbacks.TensorBoard` callback, a log
            directory (written under its `train` subdirectory, as
            `TensorBoard(log_dir)` writes), or `None` (no TensorBoard).

    Attributes:
        spectra: `(evaluations, k)` NumPy array, one sorted spectrum per row.
        epochs: the epoch of each row (-1 is before training).
        results: the `LyapunovSpectrum` objects.
        layer_inputs: what the recurrent layer received at the last
            measurement (`sequences`, `initial_state`, `mask`), or `None`.

    Example:

    >>> rng = np.random.default_rng(0)
    >>> tokens = rng.integers(1, 20, size=(32, 30))  # (batch, T) token ids
    >>> labels = rng.integers(0, 2, size=(32,))
    >>> inputs = keras.Input((30,), dtype="int32")
    >>> embedded = keras.layers.Embedding(20, 4)(inputs)
    >>> body = keras.Sequential([keras.Input((30, 4)), keras.layers.Dense(4),
    ...                          kr.layers.WCRNN(8, name="memory")])
    >>> outputs = keras.layers.Dense(2, activation="softmax")(body(embedded))
    >>> model = keras.Model(inputs, outputs)
    >>> model.compile("adam", "sparse_categorical_crossentropy")
    >>> callback = kr.callbacks.LyapunovCallback(tokens[:8], num_exponents=4)
    >>> history = model.fit(tokens, labels, epochs=1, verbose=0, callbacks=[callback])
    >>> len(history.history["lyapunov_max"])  # one float per epoch
    1
    >>> callback.spectra.shape, callback.epochs.tolist()  # before training, epoch 0
    ((2, 4), [-1, 0])
    >>> callback.layer_inputs.sequences.shape  # Embedding, then Dense: what WCRNN gets
    (8, 30, 4)
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
        probe_is_layer_input=False,
        tensorboard="auto",
    ):
        super().__init__(probe_inputs, layer, probe_is_layer_input)
        settings = check_settings(
            num_exponents, warmup, qr_interval, seed, dtype, steps=self.probe_steps
        )
        self.every_n_epochs = check.positive_int("every_n_epochs", every_n_epochs)
        self.prefix = check.string("prefix", prefix)
        self.verbose = (
            int(verbose) if isinstance(verbose, bool)
            else check.integer("verbose", verbose, minimum=0)
        )
        self.tensorboard = _check_tensorboard(tensorboard)
        self.num_exponents = settings["num_exponents"]
        self.warmup = settings["warmup"]
        self.qr_interval = settings["qr_interval"]
        if initial_state is not None:
            states = initial_state if isinstance(initial_state, (list, tuple)) else [initial_state]
            if not states:
                raise ValueError(
                    "Argument `initial_state` must be None, an array (batch, state size) or "
                    "(state size,), or a non-empty list of per-state arrays; received []."
                )
            for i, state in enumerate(states):
                check.array(f"initial_state[{i}]" if len(states) > 1 else "initial_state",
                            state, ndim=(1, 2))
        self.initial_state = initial_state
        self.seed = seed
        self.dtype = settings["dtype"]
        self.results = []
        self._epochs = []
        self._writer = None

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

    def _check_spectrum_inputs(self, layer_inputs):
        """What the spectrum adds to the layer's inputs: one initial state,
        and a warmup shorter than the layer's sequences."""
        rnn = self._rnn
        if layer_inputs.initial_state is not None and self.initial_state is not None:
            raise ValueError(
                f"LyapunovCallback: the model gives layer {rnn.name!r} its initial state "
                "(initial_state= in its call), which the callback uses; drop the callback's "
                "`initial_state`, or pass the layer's own inputs with "
                "probe_is_layer_input=True to choose the initial state yourself."
            )
        check_settings(
            self.num_exponents, self.warmup, self.qr_interval, self.seed, self.dtype,
            steps=layer_inputs.sequences.shape[1],
        )

    # ------------------------------------------------------------------ work
    def _compute(self):
        layer_inputs = self._layer_inputs()
        self.layer_inputs = layer_inputs
        initial_state = layer_inputs.initial_state
        return lyapunov_spectrum(
            self._rnn,
            layer_inputs.sequences,
            num_exponents=self.num_exponents,
            warmup=self.warmup,
            qr_interval=self.qr_interval,
            initial_state=self.initial_state if initial_state is None else initial_state,
            seed=self.seed,
            dtype=self.dtype,
        )

    def _record(self, epoch, spectrum):
        self.results.append(spectrum)
        self._epochs.append(epoch)
        values = {f"{self.prefix}_{name}": value for name, value in spectrum.summary().items()}
        self._write_tensorboard(epoch, spectrum)
        if self.verbose:
            print(
                f"LyapunovCallback epoch {epoch}: max {spectrum.max:.4f}, mean "
                f"{spectrum.mean:.4f}, Kaplan-Yorke dimension "
                f"{spectrum.kaplan_yorke_dimension:.2f} ({spectrum.seconds:.2f} s)"
            )
        return values

    # ------------------------------------------------------------- tensorboard
    def _tensorboard_dir(self):
        board = self.tensorboard
        if board is None:
            return None
        if isinstance(board, str) and board == "auto":
            boards = [
                c for c in compat.calling_callbacks(self)
                if isinstance(c, keras.callbacks.TensorBoard)
            ]
            if not boards:
                return None
            board = boards[0]
        if isinstance(board, keras.callbacks.TensorBoard):
            return os.path.join(str(board.log_dir), "train")
        return os.path.join(os.fspath(board), "train")

    def _open_tensorboard(self):
        self._writer = None
        log_dir = self._tensorboard_dir()
        if log_dir is None:
            return
        try:
            self._writer = _SummaryWriter(log_dir, self.prefix)
        except ImportError as error:
            if self.tensorboard == "auto":
                warnings.warn(
                    f"LyapunovCallback: not writing to TensorBoard ({error}).",
                    RuntimeWarning,
                    stacklevel=3,
                )
                return
            raise ImportError(
                f"LyapunovCallback(tensorboard={self.tensorboard!r}) writes with tf.summary, "
                "which needs TensorFlow (pip install tensorflow-cpu); pass tensorboard=None "
                "to write nothing."
            ) from error

    def _write_tensorboard(self, epoch, spectrum):
        if self._writer is None:
            return
        try:
            self._writer.write(epoch, spectrum)
        except Exception as error:  # noqa: BLE001 (never break `fit`)
            warnings.warn(
                f"LyapunovCallback: writing to TensorBoard failed ({error!r}); not writing "
                "there for the rest of this fit.",
                RuntimeWarning,
                stacklevel=3,
            )
            self._close_tensorboard()

    def _close_tensorboard(self):
        writer, self._writer = self._writer, None
        if writer is not None:
            try:
                writer.close()
            except Exception:  # noqa: BLE001 (closing must not break `fit`)
                pass

    # ---------------------------------------------------------------- hooks
    def on_train_begin(self, logs=None):
        # Configuration errors surface here, before any epoch runs.
        self._check_spectrum_inputs(self._attach())
        self._open_tensorboard()
        self._record(-1, self._compute())

    def on_train_end(self, logs=None):
        self._close_tensorboard()

    def on_epoch_end(self, epoch, logs=None):
        if not _epochs.measured(epoch, self.every_n_epochs, self.params):
            return
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
            values = self._record(
                epoch, _nan_spectrum(self.results[-1] if self.results else None, k)
            )
        if logs is not None:
            logs.update({key: float(value) for key, value in values.items()})


# --------------------------------------------------------------------------
# Helpers


def _check_tensorboard(value):
    if value is None or isinstance(value, keras.callbacks.TensorBoard):
        return value
    if isinstance(value, (str, os.PathLike)):
        path = check.string("tensorboard", os.fspath(value))
        if path != "auto" and os.path.exists(path) and not os.path.isdir(path):
            raise ValueError(
                f"Argument `tensorboard` must be \"auto\", None, a TensorBoard callback or a log "
                f"directory; received tensorboard={path!r}, which is a file, not a directory."
            )
        return path
    raise check.ArgumentTypeError(
        'Argument `tensorboard` must be "auto", None, a keras.callbacks.TensorBoard callback '
        f"or a log directory; received tensorboard={value!r} of type {type(value).__name__}."
    )


class _SummaryWriter:
    """Writes spectra with `tf.summary` into one log directory: scalars
    `{prefix}/max`, `/mean`, `/ky_dim` and a histogram `{prefix}/exponents`,
    in TensorBoard's scalar and histogram (v3) formats. It calls
    `tf.summary.write` with their metadata itself, so that TensorFlow alone
    suffices (`tf.summary.scalar` and `histogram` come from the `tensorboard`
    package)."""

    BUCKETS = 30  # tf.summary.histogram's default

    def __init__(self, log_dir, prefix):
        import tensorflow as tf

        self.tf = tf
        self.prefix = prefix
        self.writer = tf.summary.create_file_writer(log_dir)
        metadata = tf.compat.v1.SummaryMetadata
        # DataClass values of tensorboard's summary.proto: 1 scalar, 2 tensor.
        self.scalar_metadata = metadata(
            plugin_data=metadata.PluginData(plugin_name="scalars"), data_class=1
        )
        self.histogram_metadata = metadata(
            plugin_data=metadata.PluginData(plugin_name="histograms"), data_class=2
        )

    def write(self, step, spectrum):
        tf = self.tf
        scalars = spectrum.summary()
        # record_if(True): TensorBoard(update_freq=N) turns recording off
        # between its batch summaries, the end of an epoch included.
        with self.writer.as_default(), tf.summary.record_if(True):
            for name, value in scalars.items():
                tf.summary.write(
                    f"{self.prefix}/{name}", tf.constant(float(value), tf.float32),
                    step=int(step), metadata=self.scalar_metadata,
                )
            buckets = _histogram_buckets(np.asarray(spectrum.exponents), self.BUCKETS)
            if buckets is not None:
                tf.summary.write(
                    f"{self.prefix}/exponents", tf.constant(buckets, tf.float64),
                    step=int(step), metadata=self.histogram_metadata,
                )
        self.writer.flush()

    def close(self):
        self.writer.close()


def _histogram_buckets(values, count):
    """TensorBoard's histogram tensor, rows (left edge, right edge, count),
    of the finite values; None when there are none."""
    values = values[np.isfinite(values)].astype("float64")
    if values.size == 0:
        return None
    low, high = float(values.min()), float(values.max())
    if low == high:
        edges = np.full((count,), low)
        counts = np.zeros((count,))
        counts[-1] = values.size
        return np.stack([edges, edges, counts], axis=1)
    counts, edges = np.histogram(values, bins=count, range=(low, high))
    return np.stack([edges[:-1], edges[1:], counts.astype("float64")], axis=1)


def _nan_spectrum(template, k):
    nan = np.full((k,), np.nan)
    batch = template.per_sequence.shape[0] if template is not None else 1
    return LyapunovSpectrum(
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
