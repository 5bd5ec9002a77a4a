"""LyapunovCallback in model.fit, under every backend."""

import importlib.util
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
    assert len(history.history["lyap_max"]) == 3
    # Epoch 0 repeats the values measured before training.
    assert history.history["lyap_max"][0] == pytest.approx(callback.spectra[0, 0])
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
    with pytest.raises(ValueError, match="probe_inputs.*rank|probe_inputs.*shape"):
        kr.callbacks.LyapunovCallback(X[0])
    with pytest.raises(ValueError, match="every_n_epochs"):
        kr.callbacks.LyapunovCallback(X, every_n_epochs=0)
    with pytest.raises(ValueError, match="warmup.*39"):
        kr.callbacks.LyapunovCallback(X, warmup=40)
    with pytest.raises(ValueError, match="prefix"):
        kr.callbacks.LyapunovCallback(X, prefix="")
    with pytest.raises(TypeError, match="layer"):
        kr.callbacks.LyapunovCallback(X, layer=3)

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
