"""ReLUSurvivalCallback: survival rates logged during fit."""

import keras
import numpy as np
import pytest

import keras_residual as kr


def _model():
    inputs = keras.Input((6, 6, 4))
    y = kr.layers.PNNHConvBlock(4)(inputs)
    y = kr.layers.PlainConvBlock(4)(y)
    y = keras.layers.GlobalAveragePooling2D()(y)
    y = keras.layers.Dense(8, activation="relu", name="head_relu")(y)
    model = keras.Model(inputs, keras.layers.Dense(2)(y))
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    return model


def _data(n=32, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((n, 6, 6, 4)).astype("float32"), rng.standard_normal((n, 2)).astype("float32")


def test_logs_into_history_and_keeps_rates_per_epoch():
    model = _model()
    x, y = _data()
    callback = kr.callbacks.ReLUSurvivalCallback(x[:16])
    history = model.fit(x, y, batch_size=16, epochs=3, verbose=0, callbacks=[callback])
    assert callback.epochs == [0, 1, 2] and sorted(callback.rates) == [0, 1, 2]
    keys = list(callback.rates[0])
    assert len(keys) == 6 and keys[-1] == "head_relu"
    for epoch in range(3):
        values = np.array(list(callback.rates[epoch].values()))
        assert history.history["relu_survival_mean"][epoch] == pytest.approx(values.mean())
        assert history.history["relu_survival_min"][epoch] == pytest.approx(values.min())
    # The last measurement is the trained model's survival.
    final = kr.dynamics.relu_survival(model, x[:16])
    for key, rate in final.items():
        assert callback.rates[2][key] == pytest.approx(rate, abs=1e-6)
    # Training moved something.
    assert callback.rates[0] != callback.rates[2]


def test_every_n_epochs_and_layers():
    model = _model()
    x, y = _data()
    callback = kr.callbacks.ReLUSurvivalCallback(x[:8], layers=["head_relu"], every_n_epochs=2)
    history = model.fit(x, y, batch_size=16, epochs=5, verbose=0, callbacks=[callback])
    # Every 2nd epoch and the last one, as LyapunovCallback measures.
    assert callback.epochs == [1, 3, 4]
    assert list(callback.rates[1]) == ["head_relu"]
    # As with validation_freq: one History value per measured epoch.
    assert len(history.history["relu_survival_min"]) == 3
    assert len(history.history["loss"]) == 5


def test_a_model_that_outputs_nan_logs_nan_not_zero():
    model = _model()
    x, y = _data()
    probe = x[:8].copy()
    probe[0, 0, 0, 0] = np.nan
    callback = kr.callbacks.ReLUSurvivalCallback(probe)
    with pytest.warns(RuntimeWarning, match="NaN"):
        history = model.fit(x, y, batch_size=16, epochs=1, verbose=0, callbacks=[callback])
    assert np.isnan(history.history["relu_survival_mean"][0])
    assert np.isnan(history.history["relu_survival_min"][0])


def test_a_wrong_probe_fails_before_the_first_epoch():
    model = _model()
    x, y = _data()
    seen = []
    marker = keras.callbacks.LambdaCallback(on_epoch_begin=lambda epoch, logs: seen.append(epoch))
    callback = kr.callbacks.ReLUSurvivalCallback(np.zeros((4, 5, 5, 3), "float32"))
    with pytest.raises(ValueError, match=r"ReLUSurvivalCallback.*`probe_inputs`.*\(4, 5, 5, 3\)"):
        model.fit(x, y, batch_size=16, epochs=1, verbose=0, callbacks=[callback, marker])
    assert seen == [], "the probe was checked only after training began"
    with pytest.raises(ValueError, match="`probe_inputs` must not be empty"):
        kr.callbacks.ReLUSurvivalCallback(np.zeros((0, 6, 6, 4), "float32"))


def test_a_model_without_relu_fails_at_train_begin():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile("sgd", "mse")
    callback = kr.callbacks.ReLUSurvivalCallback(np.zeros((4, 3), "float32"))
    with pytest.raises(ValueError, match="no ReLU"):
        model.fit(np.zeros((8, 3)), np.zeros((8, 2)), epochs=1, verbose=0, callbacks=[callback])


def test_plot():
    import matplotlib

    matplotlib.use("Agg")
    callback = kr.callbacks.ReLUSurvivalCallback(np.zeros((1, 6, 6, 4), "float32"))
    callback.rates = {1: {"a": 0.5, "b": 0.4}, 3: {"a": 0.6, "b": 0.55}}
    ax = callback.plot()
    assert [line.get_label() for line in ax.lines] == ["epoch 2", "epoch 4"]
    np.testing.assert_allclose(ax.lines[1].get_ydata(), [0.6, 0.55])


@pytest.mark.parametrize("value", [0, -1, 1.5, True])
def test_invalid_every_n_epochs(value):
    with pytest.raises(ValueError, match=f"every_n_epochs={value!r}"):
        kr.callbacks.ReLUSurvivalCallback(np.zeros((1, 2)), every_n_epochs=value)
