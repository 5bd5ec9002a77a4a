"""LyapunovCallback in model.fit, under every backend."""

import ast
import glob
import importlib.util
import os
import re
import types
import warnings

import keras
import numpy as np
import pytest

import keras_residual as kr
from keras_residual import residuals

RNG = np.random.default_rng(3)
X = RNG.normal(size=(32, 40, 2)).astype("float32")
Y = RNG.integers(0, 3, size=(32,))
KEYS = ("lyapunov_max", "lyapunov_mean", "lyapunov_ky_dim")


def classifier(recurrent, front=None):
    layers = [keras.Input((40, 2))]
    layers += [front] if front is not None else []
    layers += [recurrent, keras.layers.Dense(3, activation="softmax")]
    model = keras.Sequential(layers)
    model.compile(keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy")
    return model


class EpochSpy(keras.callbacks.Callback):
    """Records the epochs that began (none when on_train_begin raised)."""

    def __init__(self):
        super().__init__()
        self.epochs = []

    def on_epoch_begin(self, epoch, logs=None):
        self.epochs.append(epoch)


def features(layers, x):
    """x through `layers` in inference mode, as a NumPy array."""
    for layer in layers:
        x = layer(x, training=False)
    return keras.ops.convert_to_numpy(x)


def test_callback_adds_history_keys_and_keeps_spectra():
    rnn = kr.layers.WCRNN(6, coupling=0.2, residual=residuals.Rotational(angle=0.3))
    model = classifier(rnn)
    callback = kr.callbacks.LyapunovCallback(X[:4])
    history = model.fit(X, Y, epochs=3, batch_size=16, verbose=0, callbacks=[callback])
    for key in KEYS:
        assert len(history.history[key]) == 3
        assert all(isinstance(v, float) and np.isfinite(v) for v in history.history[key])
    assert callback.spectra.shape == (4, 6)
    assert callback.epochs.tolist() == [-1, 0, 1, 2]
    # The logged figures are those of the stored spectra.
    assert history.history["lyapunov_max"] == pytest.approx(callback.spectra[1:, 0].tolist())
    assert history.history["lyapunov_mean"] == pytest.approx(callback.spectra[1:].mean(axis=1).tolist())
    # ... and those of a direct call on the trained layer.
    direct = kr.dynamics.lyapunov_spectrum(rnn, X[:4])
    np.testing.assert_allclose(callback.spectra[-1], direct.exponents, atol=1e-6)
    # Training changed the spectrum.
    assert np.max(np.abs(callback.spectra[-1] - callback.spectra[0])) > 1e-5
    if importlib.util.find_spec("matplotlib") is not None:
        figure = kr.dynamics.plot_spectra(callback)
        line = figure.axes[0].lines[0]
        assert line.get_xdata().tolist() == [-1, 0, 1, 2]


def test_callback_every_n_epochs_layer_name_and_front_layers():
    lstm = keras.layers.LSTM(3, name="memory")
    model = classifier(lstm, front=keras.layers.Dense(4))
    callback = kr.callbacks.LyapunovCallback(
        X[:4], layer="memory", num_exponents=4, every_n_epochs=2, prefix="lyap"
    )
    history = model.fit(X, Y, epochs=3, batch_size=16, verbose=0, callbacks=[callback])
    assert callback.epochs.tolist() == [-1, 1, 2]  # every 2nd epoch and the last one
    assert callback.spectra.shape == (3, 4)
    # As with validation_freq: one History value per measured epoch.
    assert len(history.history["lyap_max"]) == 2 and len(history.history["loss"]) == 3
    assert history.history["lyap_max"] == pytest.approx(callback.spectra[1:, 0].tolist())
    # The probe went through the Dense layer in front of the LSTM.
    features = keras.ops.convert_to_numpy(model.layers[0](X[:4]))
    direct = kr.dynamics.lyapunov_spectrum(lstm, features, num_exponents=4)
    np.testing.assert_allclose(callback.spectra[-1], direct.exponents, atol=1e-5)


def test_super_critical_network_gives_non_finite_figures_not_a_crash():
    # |h| grows as 100^t: float32 overflows after about 20 of the 40 probe steps.
    rnn = kr.layers.WCRNN(4, coupling=0.1, residual=residuals.Homogeneous(radius=100.0))
    model = classifier(rnn)
    callback = kr.callbacks.LyapunovCallback(np.ones((2, 40, 2), "float32"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        history = model.fit(X, Y, epochs=1, batch_size=16, verbose=0, callbacks=[callback])
    assert not np.isfinite(history.history["lyapunov_max"][0])
    assert callback.spectra.shape == (2, 4)


def test_callback_errors_name_the_problem():
    # The recurrent layer's own inputs are checked at once ...
    with pytest.raises(ValueError, match="probe_inputs.*rank|probe_inputs.*shape"):
        kr.callbacks.LyapunovCallback(X[0], probe_is_layer_input=True)
    with pytest.raises(ValueError, match="every_n_epochs"):
        kr.callbacks.LyapunovCallback(X, every_n_epochs=0)
    with pytest.raises(ValueError, match="warmup.*39"):
        kr.callbacks.LyapunovCallback(X, warmup=40, probe_is_layer_input=True)
    with pytest.raises(ValueError, match="prefix"):
        kr.callbacks.LyapunovCallback(X, prefix="")
    with pytest.raises(TypeError, match="layer"):
        kr.callbacks.LyapunovCallback(X, layer=3)
    # The same rules as lyapunov_spectrum and the rest of the library.
    for kwargs, match in [
        ({"every_n_epochs": 1.5}, "every_n_epochs=1.5"),
        ({"prefix": 3}, "prefix=3"),
        ({"qr_interval": "often"}, "qr_interval='often'"),
        ({"seed": -1}, "seed=-1"),
        ({"dtype": "int8"}, "dtype='int8'"),
        ({"num_exponents": True}, "num_exponents=True"),
        ({"probe_is_layer_input": 1}, "probe_is_layer_input=1"),
        ({"tensorboard": 3}, "tensorboard=3"),
    ]:
        with pytest.raises((ValueError, TypeError), match=match):
            kr.callbacks.LyapunovCallback(X, **kwargs)
    with pytest.raises(ValueError, match=r"`probe_inputs` must not be empty.*\(0, 40, 2\)"):
        kr.callbacks.LyapunovCallback(X[:0])
    callback = kr.callbacks.LyapunovCallback(X, num_exponents=np.int64(2), warmup=np.int32(3))
    assert (callback.num_exponents, callback.warmup) == (2, 3)

    two = keras.Sequential([
        keras.Input((40, 2)),
        keras.layers.SimpleRNN(3, return_sequences=True, name="first"),
        keras.layers.GRU(3, name="second"),
        keras.layers.Dense(3, activation="softmax"),
    ])
    two.compile("sgd", "sparse_categorical_crossentropy")
    with pytest.raises(ValueError, match=r"has 2: \['first', 'second'\]"):
        two.fit(X, Y, epochs=1, verbose=0, callbacks=[kr.callbacks.LyapunovCallback(X[:2])])

    none = keras.Sequential([keras.Input((40, 2)), keras.layers.Flatten(), keras.layers.Dense(3)])
    none.compile("sgd", "mse")
    with pytest.raises(ValueError, match="has 0"):
        none.fit(X, np.zeros((32, 3)), epochs=1, verbose=0,
                 callbacks=[kr.callbacks.LyapunovCallback(X[:2])])

    # ... model inputs when the model has run them, before the first epoch:
    # a probe the model refuses, and a warmup beyond the recurrent layer's steps.
    for probe, kwargs, match in [
        (X[0], {}, r"probe_inputs.*\(40, 2\).*model's inputs.*\(None, 40, 2\)"),
        (X[:2], {"warmup": 40}, "warmup.*39"),
    ]:
        model = classifier(kr.layers.WCRNN(3))
        spy = EpochSpy()
        with pytest.raises(ValueError, match=match):
            model.fit(X, Y, epochs=1, verbose=0,
                      callbacks=[kr.callbacks.LyapunovCallback(probe, **kwargs), spy])
        assert spy.epochs == []


# --------------------------------------------------------------------------
# The probe is the model's input, mapped to what the recurrent layer receives


def test_probe_goes_through_everything_before_a_deeply_nested_rnn():
    # Dense -> Dropout -> Functional(Dense -> Sequential(BatchNorm -> WCRNN)) -> Dense.
    # Every width is 2, so a probe fed to the WCRNN unmapped runs without error
    # (the old defect: a silently wrong spectrum). Dropout and BatchNormalization
    # differ between training and inference: the inputs must be inference's.
    keras.utils.set_random_seed(0)
    rnn = kr.layers.WCRNN(6, coupling=0.9, residual=residuals.Homogeneous(radius=0.6))
    norm = keras.layers.BatchNormalization()
    innermost = keras.Sequential([keras.Input((40, 2)), norm, rnn], name="innermost")
    middle_in = keras.Input((40, 2))
    middle_dense = keras.layers.Dense(2, kernel_initializer=keras.initializers.Identity(3.0))
    middle = keras.Model(middle_in, innermost(middle_dense(middle_in)), name="middle")
    inputs = keras.Input((40, 2))
    outer_dense = keras.layers.Dense(2, kernel_initializer=keras.initializers.Identity(-1.0))
    dropout = keras.layers.Dropout(0.5)  # inference mode: the identity
    outputs = keras.layers.Dense(3, activation="softmax")(middle(dropout(outer_dense(inputs))))
    model = keras.Model(inputs, outputs)
    model.compile(keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy")
    callback = kr.callbacks.LyapunovCallback(X[:4], num_exponents=3)
    model.fit(X, Y, epochs=1, batch_size=16, verbose=0, callbacks=[callback])

    path = [outer_dense, dropout, middle_dense, norm]
    expected = features(path, X[:4])
    direct = kr.dynamics.lyapunov_spectrum(rnn, expected, num_exponents=3, qr_interval="auto")
    # Same inputs, same weights, same algorithm: only float32 rounding differs.
    np.testing.assert_allclose(callback.spectra[-1], direct.exponents, atol=1e-5)
    # Float32 rounding of 4 layers, in whichever order each backend sums.
    np.testing.assert_allclose(callback.layer_inputs.sequences, expected, rtol=1e-5, atol=1e-5)
    raw = kr.dynamics.lyapunov_spectrum(rnn, X[:4], num_exponents=3, qr_interval="auto")
    # Far beyond the tolerance above: the unmapped probe would fail the test.
    assert np.max(np.abs(raw.exponents - direct.exponents)) > 1e-2
    trained = features(path[:3], X[:4])
    trained = keras.ops.convert_to_numpy(norm(trained, training=True))
    assert np.max(np.abs(trained - expected)) > 0.1  # ... and training-mode inputs


def test_encoder_state_and_several_inputs_reach_the_decoder():
    # A seq2seq-like model with two inputs: the decoder starts from the
    # encoder's state, as it does in the model.
    keras.utils.set_random_seed(1)
    enc_in, dec_in = keras.Input((40, 2), name="enc"), keras.Input((40, 2), name="dec")
    encoder = keras.layers.SimpleRNN(4, return_state=True, name="encoder")
    decoder = keras.layers.SimpleRNN(4, name="decoder")
    _, state = encoder(enc_in)
    outputs = keras.layers.Dense(3, activation="softmax")(decoder(dec_in, initial_state=[state]))
    model = keras.Model([enc_in, dec_in], outputs)
    model.compile("sgd", "sparse_categorical_crossentropy")
    probe = [X[:4], X[4:8]]
    callback = kr.callbacks.LyapunovCallback(probe, layer="decoder")
    model.fit([X, X[::-1]], Y, epochs=1, batch_size=16, verbose=0, callbacks=[callback])

    _, h0 = encoder(X[:4])
    h0 = keras.ops.convert_to_numpy(h0)
    # The encoder run eagerly here and inside the callback: float32 rounding only.
    np.testing.assert_allclose(callback.layer_inputs.initial_state[0], h0, atol=1e-6)
    direct = kr.dynamics.lyapunov_spectrum(decoder, X[4:8], initial_state=[h0], qr_interval="auto")
    # Same inputs and weights: float32 rounding only.
    np.testing.assert_allclose(callback.spectra[-1], direct.exponents, atol=1e-6)
    # A second initial state would be ambiguous: refused before the first epoch.
    spy = EpochSpy()
    with pytest.raises(ValueError, match="initial state.*initial_state"):
        model.fit([X, X], Y, epochs=1, verbose=0, callbacks=[
            kr.callbacks.LyapunovCallback(probe, layer="decoder", initial_state=h0), spy])
    assert spy.epochs == []


def test_embedding_model_takes_token_ids_and_refuses_embedded_ones():
    tokens = RNG.integers(1, 10, size=(32, 40))
    embedding = keras.layers.Embedding(10, 2)
    rnn = kr.layers.WCRNN(4, coupling=0.5)
    model = keras.Sequential([keras.Input((40,), dtype="int32"), embedding, rnn,
                              keras.layers.Dense(3, activation="softmax")])
    model.compile("sgd", "sparse_categorical_crossentropy")
    callback = kr.callbacks.LyapunovCallback(tokens[:4])  # (batch, T) integers
    model.fit(tokens, Y, epochs=1, batch_size=16, verbose=0, callbacks=[callback])
    embedded = features([embedding], tokens[:4])
    direct = kr.dynamics.lyapunov_spectrum(rnn, embedded, qr_interval="auto")
    # Same inputs and weights: float32 rounding only.
    np.testing.assert_allclose(callback.spectra[-1], direct.exponents, atol=1e-6)

    # An embedded probe is not the model's input: a clear error before the first epoch.
    spy = EpochSpy()
    with pytest.raises(ValueError, match=r"\(4, 40, 2\).*model's inputs.*\(None, 40\) int32"
                                         r".*probe_is_layer_input=True"):
        model.fit(tokens, Y, epochs=1, verbose=0,
                  callbacks=[kr.callbacks.LyapunovCallback(embedded), spy])
    assert spy.epochs == []
    # ... which is what probe_is_layer_input=True is for.
    callback = kr.callbacks.LyapunovCallback(embedded, probe_is_layer_input=True)
    model.fit(tokens, Y, epochs=1, batch_size=16, verbose=0, callbacks=[callback])
    direct = kr.dynamics.lyapunov_spectrum(rnn, embedded, qr_interval="auto")
    # Same inputs and weights: float32 rounding only.
    np.testing.assert_allclose(callback.spectra[-1], direct.exponents, atol=1e-6)


def test_masked_probe_steps_are_refused():
    tokens = RNG.integers(1, 10, size=(16, 40))
    model = keras.Sequential([keras.Input((40,), dtype="int32"),
                              keras.layers.Embedding(10, 2, mask_zero=True),
                              keras.layers.SimpleRNN(3), keras.layers.Dense(3)])
    model.compile("sgd", "mse")
    padded = tokens[:4].copy()
    padded[0, 30:] = 0  # padding: the RNN skips these steps in the model
    with pytest.raises(ValueError, match="masks 10 of the 160 steps.*without padding"):
        model.fit(tokens, np.zeros((16, 3)), epochs=1, verbose=0,
                  callbacks=[kr.callbacks.LyapunovCallback(padded)])
    callback = kr.callbacks.LyapunovCallback(tokens[:4])  # nothing masked
    model.fit(tokens, np.zeros((16, 3)), epochs=1, verbose=0, callbacks=[callback])
    assert callback.layer_inputs.mask is not None and callback.layer_inputs.mask.all()
    assert np.all(np.isfinite(callback.spectra))


class Subclassed(keras.Model):
    def __init__(self):
        super().__init__()
        self.front = keras.layers.Dense(2)
        self.rnn = kr.layers.WCRNN(4, name="memory")
        self.head = keras.layers.Dense(3, activation="softmax")

    def call(self, x):
        return self.head(self.rnn(self.front(x)))


class Holder(keras.layers.Layer):
    """A custom layer running an RNN inside: what it feeds the RNN is not in the graph."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.rnn = keras.layers.SimpleRNN(3)

    def call(self, x):
        return self.rnn(2.0 * x)


def test_models_whose_rnn_inputs_cannot_be_traced_raise_and_say_what_to_do():
    fix = "probe_is_layer_input=True"
    # A subclassed model: its call() is Python code.
    model = Subclassed()
    model.compile("sgd", "sparse_categorical_crossentropy")
    with pytest.raises(TypeError, match=f"subclassed model.*{fix}"):
        model.fit(X, Y, epochs=1, verbose=0, callbacks=[kr.callbacks.LyapunovCallback(X[:2])])
    # ... measured from the layer's own inputs instead.
    callback = kr.callbacks.LyapunovCallback(X[:2], probe_is_layer_input=True)
    model.fit(X, Y, epochs=1, verbose=0, callbacks=[callback])
    direct = kr.dynamics.lyapunov_spectrum(model.rnn, X[:2], qr_interval="auto")
    # Same inputs and weights: float32 rounding only.
    np.testing.assert_allclose(callback.spectra[-1], direct.exponents, atol=1e-6)

    # One RNN called on two inputs: which one is probed is ambiguous.
    shared = keras.layers.SimpleRNN(3, name="shared")
    a, b = keras.Input((40, 2)), keras.Input((40, 2))
    two_calls = keras.Model([a, b], keras.layers.Dense(3)(shared(a) + shared(b)))
    two_calls.compile("sgd", "mse")
    with pytest.raises(ValueError, match=f"'shared'.*called at 2 places.*{fix}"):
        two_calls.fit([X, X], np.zeros((32, 3)), epochs=1, verbose=0,
                      callbacks=[kr.callbacks.LyapunovCallback([X[:2], X[:2]])])

    # An RNN inside a custom layer.
    inputs = keras.Input((40, 2))
    held = keras.Model(inputs, keras.layers.Dense(3)(Holder(name="holder")(inputs)))
    held.compile("sgd", "mse")
    with pytest.raises(ValueError, match=f"inside the layer 'holder'.*{fix}"):
        held.fit(X, np.zeros((32, 3)), epochs=1, verbose=0,
                 callbacks=[kr.callbacks.LyapunovCallback(X[:2])])


# --------------------------------------------------------------------------
# Naming the layer


def test_bidirectional_directions_are_the_names_the_error_lists():
    keras.utils.set_random_seed(2)
    model = classifier(keras.layers.Bidirectional(keras.layers.SimpleRNN(4, name="rnn"), name="bi"))
    with pytest.raises(ValueError, match=r"has 2: (\[.*\])") as info:
        model.fit(X, Y, epochs=1, verbose=0, callbacks=[kr.callbacks.LyapunovCallback(X[:4])])
    listed = ast.literal_eval(re.search(r"has 2: (\[.*\])", str(info.value)).group(1))
    assert listed == ["forward_rnn", "backward_rnn"]
    wrapper = model.layers[0]
    for name, layer in zip(listed, [wrapper.forward_layer, wrapper.backward_layer]):
        callback = kr.callbacks.LyapunovCallback(X[:4], layer=name)
        model.fit(X, Y, epochs=1, verbose=0, callbacks=[callback])
        direct = kr.dynamics.lyapunov_spectrum(layer, X[:4], qr_interval="auto")
        # Same inputs and weights: float32 rounding only.
        np.testing.assert_allclose(callback.spectra[-1], direct.exponents, atol=1e-6)
    # The backward direction runs time-reversed: not the spectrum of its cell forwards.
    forwards = kr.dynamics.lyapunov_spectrum(wrapper.backward_layer.cell, X[:4])
    assert np.max(np.abs(callback.spectra[-1] - forwards.exponents)) > 1e-3
    # The wrapper's own name says which names to pass.
    with pytest.raises(ValueError, match=r"'bi' is a Bidirectional.*"
                                         r"\['forward_rnn', 'backward_rnn'\]"):
        model.fit(X, Y, epochs=1, verbose=0,
                  callbacks=[kr.callbacks.LyapunovCallback(X[:4], layer="bi")])


def test_recurrent_layers_sharing_a_name_are_named_by_path():
    def branch(name):
        return keras.Sequential([keras.Input((40, 2)), keras.layers.SimpleRNN(3, name="rnn")],
                                name=name)

    inputs = keras.Input((40, 2))
    left, right = branch("left"), branch("right")
    model = keras.Model(inputs, keras.layers.Dense(3)(left(inputs) + right(inputs)))
    model.compile("sgd", "mse")
    target = np.zeros((32, 3))
    with pytest.raises(ValueError, match=r"has 2: \['left/rnn', 'right/rnn'\]"):
        model.fit(X, target, epochs=1, verbose=0,
                  callbacks=[kr.callbacks.LyapunovCallback(X[:2])])
    with pytest.raises(ValueError, match=r"2 recurrent layers named 'rnn'.*'left/rnn'"):
        model.fit(X, target, epochs=1, verbose=0,
                  callbacks=[kr.callbacks.LyapunovCallback(X[:2], layer="rnn")])
    callback = kr.callbacks.LyapunovCallback(X[:2], layer="right/rnn")
    model.fit(X, target, epochs=1, verbose=0, callbacks=[callback])
    direct = kr.dynamics.lyapunov_spectrum(right.layers[0], X[:2], qr_interval="auto")
    # Same inputs and weights: float32 rounding only.
    np.testing.assert_allclose(callback.spectra[-1], direct.exponents, atol=1e-6)


# --------------------------------------------------------------------------
# TensorBoard


def tensorboard_callback(log_dir):
    """Keras' TensorBoard callback. Its own summaries (epoch_loss, ...) need the
    `tensorboard` package; where that is missing, they are dropped (the
    LyapunovCallback's need TensorFlow only). With update_freq=3 it turns
    recording off for the batches it skips, the end of the first epoch included."""
    if importlib.util.find_spec("tensorboard") is not None:
        return keras.callbacks.TensorBoard(log_dir, write_graph=False, update_freq=3)

    class WithoutItsOwnSummaries(keras.callbacks.TensorBoard):
        @property
        def summary(self):
            import tensorflow as tf

            def drop(*args, **kwargs):
                return True

            module = {name: getattr(tf.summary, name) for name in dir(tf.summary)
                      if not name.startswith("_")}
            module.update(dict.fromkeys(("scalar", "histogram", "image", "text", "audio",
                                         "graph"), drop))
            return types.SimpleNamespace(**module)

    return WithoutItsOwnSummaries(log_dir, write_graph=False, update_freq=3)


def read_summaries(log_dir):
    """{tag: {step: value}} of every event file in log_dir; histograms as
    their (buckets, 3) arrays, with the plugin names."""
    import tensorflow as tf

    found, plugins = {}, {}
    for path in sorted(glob.glob(os.path.join(log_dir, "events.out.tfevents.*"))):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                found.setdefault(value.tag, {})[event.step] = tf.make_ndarray(value.tensor)
                plugins[value.tag] = value.metadata.plugin_data.plugin_name
    return found, plugins


def test_spectra_are_written_to_the_tensorboard_of_the_same_fit(tmp_path):
    model = classifier(kr.layers.WCRNN(4, coupling=0.3))
    callback = kr.callbacks.LyapunovCallback(X[:4], num_exponents=3)
    board = tensorboard_callback(str(tmp_path))
    model.fit(X, Y, epochs=2, verbose=0, callbacks=[callback, board])
    found, plugins = read_summaries(str(tmp_path / "train"))
    steps = [-1, 0, 1]  # before training, then the epochs
    for name, column in [("max", callback.spectra[:, 0]), ("mean", callback.spectra.mean(axis=1)),
                         ("ky_dim", [r.kaplan_yorke_dimension for r in callback.results])]:
        tag = f"lyapunov/{name}"
        assert plugins[tag] == "scalars" and sorted(found[tag]) == steps
        # Written as float32 scalars: float32 rounding of float64 figures.
        np.testing.assert_allclose([found[tag][s] for s in steps], column, rtol=1e-6)
    histogram = found["lyapunov/exponents"]
    assert plugins["lyapunov/exponents"] == "histograms" and sorted(histogram) == steps
    for step, spectrum in zip(steps, callback.spectra):
        buckets = histogram[step]
        assert buckets.shape[1] == 3 and buckets[:, 2].sum() == 3  # every exponent counted
        # The outer edges are the extreme exponents: float64 throughout, so exact.
        assert (buckets[0, 0], buckets[-1, 1]) == (spectrum.min(), spectrum.max())

    # An explicit log directory, not the TensorBoard callback's; None writes nothing.
    explicit, board_dir = tmp_path / "explicit", tmp_path / "board"
    model.fit(X, Y, epochs=1, verbose=0, callbacks=[
        kr.callbacks.LyapunovCallback(X[:4], prefix="mine", tensorboard=explicit),
        kr.callbacks.LyapunovCallback(X[:4], prefix="none", tensorboard=None),
        tensorboard_callback(str(board_dir)),
    ])
    found, _ = read_summaries(str(explicit / "train"))
    assert sorted(found["mine/max"]) == [-1, 0] and not any(t.startswith("none/") for t in found)
    assert glob.glob(str(board_dir / "train" / "events.out.tfevents.*"))  # its own file
    found, _ = read_summaries(str(board_dir / "train"))
    assert not any(tag.startswith(("mine/", "none/")) for tag in found)


def test_a_tensorboard_path_that_is_a_file_is_a_clear_error(tmp_path):
    log_file = tmp_path / "events.txt"
    log_file.write_text("not a directory")
    for value in (str(log_file), log_file):
        with pytest.raises(ValueError, match=r"`tensorboard`.*events.txt.*is a file"):
            kr.callbacks.LyapunovCallback(X, tensorboard=value)
    # A directory that does not exist yet is fine: TensorBoard creates it.
    callback = kr.callbacks.LyapunovCallback(X, tensorboard=tmp_path / "new_logs")
    assert callback.tensorboard == str(tmp_path / "new_logs")


@pytest.mark.parametrize("every, epochs, measured", [(1, 3, [0, 1, 2]), (2, 5, [1, 3, 4]),
                                                     (3, 2, [1]), (2, 4, [1, 3])])
def test_every_n_epochs_means_the_same_in_both_measuring_callbacks(every, epochs, measured):
    """Every n-th epoch and the last one, logging only what was measured
    (LyapunovCallback used to log repeats; ReLUSurvivalCallback skipped the
    last epoch)."""
    x = RNG.normal(size=(16, 6)).astype("float32")
    y = RNG.integers(0, 3, size=(16,))
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(4, activation="relu"),
                              keras.layers.Dense(3, activation="softmax")])
    model.compile("sgd", "sparse_categorical_crossentropy")
    survival = kr.callbacks.ReLUSurvivalCallback(x[:8], every_n_epochs=every)
    history = model.fit(x, y, epochs=epochs, verbose=0, callbacks=[survival])
    assert survival.epochs == measured
    assert len(history.history["relu_survival_mean"]) == len(measured)
    rnn_model = classifier(keras.layers.SimpleRNN(3))
    lyapunov = kr.callbacks.LyapunovCallback(X[:4], every_n_epochs=every)
    history = rnn_model.fit(X, Y, epochs=epochs, batch_size=32, verbose=0, callbacks=[lyapunov])
    assert lyapunov.epochs.tolist() == [-1] + measured
    assert len(history.history["lyapunov_max"]) == len(measured)
