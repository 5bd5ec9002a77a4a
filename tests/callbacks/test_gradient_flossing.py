"""Gradient flossing before training (plain Keras) and during training (the callback)."""

import warnings

import keras
import numpy as np
import pytest

import keras_residual as kr
from keras_residual import residuals

RNG = np.random.default_rng(3)
X = RNG.normal(size=(32, 30, 2)).astype("float32")
Y = X[:, 0, :1]


def _chaotic(units=16):
    return keras.layers.SimpleRNN(
        units, recurrent_initializer=keras.initializers.Orthogonal(gain=2.0, seed=1),
        kernel_initializer=keras.initializers.GlorotUniform(seed=2),
    )


def _top(rnn, x, k=3):
    return kr.dynamics.lyapunov_spectrum(rnn, x, num_exponents=k).exponents


def _chaotic_64(gain=2.0):
    """A 64-unit SimpleRNN, recurrent matrix gain x orthogonal, weak inputs:
    chaotic (lambda_1 ~ 0.14), with the same weights on every backend."""
    rnn = keras.layers.SimpleRNN(64)
    rnn(X[:1])
    rng = np.random.default_rng(1)
    q, _ = np.linalg.qr(rng.normal(size=(64, 64)))
    kernel = 0.1 * rng.normal(size=(2, 64))
    rnn.set_weights([kernel.astype("float32"), (gain * q).astype("float32"), np.zeros(64, "float32")])
    return rnn


def test_flossing_before_training_brings_a_chaotic_rnn_to_the_edge_of_chaos():
    rnn = _chaotic_64()
    rng = np.random.default_rng(5)
    train = rng.normal(size=(32, 60, 2)).astype("float32")
    fresh = rng.normal(size=(16, 100, 2)).astype("float32")  # not the flossing data
    before = kr.dynamics.lyapunov_spectrum(rnn, fresh, num_exponents=3, warmup=20).exponents
    assert before[0] > 0.1, before  # gain 2: chaotic
    inputs = keras.Input(train.shape[1:])
    exponents = kr.layers.LyapunovExponents(rnn, 3, warmup=20, trajectory_gradient=False)
    floss = keras.Model(inputs, exponents(inputs))
    floss.compile(keras.optimizers.Adam(1e-2), "mse")
    floss.fit(train, np.zeros((32, 3), "float32"), batch_size=32, epochs=40, verbose=0)
    after = kr.dynamics.lyapunov_spectrum(rnn, fresh, num_exponents=3, warmup=20).exponents
    # Measured on other inputs after 40 steps: max |lambda| 0.014-0.031
    # across the backends (from 0.14; the chaotic trajectories amplify each
    # backend's rounding, so the runs differ); 0.05 is a third of the start.
    assert np.max(np.abs(after)) < 0.05, (before, after)


def _model(rnn):
    model = keras.Sequential([keras.Input(X.shape[1:]), rnn, keras.layers.Dense(1)])
    model.compile(keras.optimizers.Adam(1e-2), "mse")
    return model


def test_callback_flosses_on_its_schedule_and_logs_into_history():
    rnn = _chaotic()
    model = _model(rnn)
    before = _top(rnn, X[8:])
    callback = kr.callbacks.GradientFlossing(X[:8], num_exponents=3, every_n_steps=2, until_epoch=2)
    history = model.fit(X, Y, batch_size=8, epochs=3, verbose=0, callbacks=[callback])
    # 4 steps per epoch, flossing after steps 2 and 4 of epochs 0 and 1 only.
    assert callback.flossing_steps == [2, 4, 6, 8]
    assert len(history.history["flossing_loss"]) == 2 and len(history.history["loss"]) == 3
    assert np.all(np.isfinite(callback.losses))
    after = _top(rnn, X[8:])
    assert np.max(np.abs(after)) < np.max(np.abs(before)), (before, after)


def test_targets_per_exponent_from_a_wcrnn_residual():
    rnn = kr.layers.WCRNN(
        8, coupling=0.8, residual=residuals.Heterogeneous(radii=[0.9] * 4 + [0.6] * 4),
        recurrent_initializer=keras.initializers.Orthogonal(gain=1.5, seed=3),
    )
    model = _model(rnn)
    model(X[:1])
    targets = rnn.cell.residual.analytic_exponents()[:2]
    callback = kr.callbacks.GradientFlossing(X[:8], num_exponents=2, targets=targets, steps=2)
    model.fit(X, Y, batch_size=8, epochs=1, verbose=0, callbacks=[callback])
    assert len(callback.losses) == 4
    # The loss is sum over i of (lambda_i - target_i)^2, averaged over sequences.
    exponents = keras.ops.convert_to_numpy(kr.layers.LyapunovExponents(rnn, 2)(X[:8]))
    expected = np.mean(np.sum((exponents - targets) ** 2, axis=-1))
    floss = callback._floss_model.evaluate(X[:8], callback._target_batch, verbose=0)
    assert float(np.asarray(floss).reshape(-1)[0]) == pytest.approx(expected, rel=1e-4)


def test_overflowing_dynamics_are_reported_and_the_update_undone():
    # h_t grows like 3^t: finite over the task's 5 steps, inf over the
    # probe's 200 (3^200 > float32 max).
    rnn = kr.layers.WCRNN(4, coupling=0.1, residual=residuals.Homogeneous(3.0))
    model = keras.Sequential([keras.Input((None, 1)), rnn, keras.layers.Dense(1)])
    # A task optimizer that moves nothing (its gradients are finite), and a
    # flossing one that would.
    model.compile(keras.optimizers.SGD(0.0), "mse")
    x_task = np.ones((8, 5, 1), "float32")
    model(x_task[:1])
    weights = [w.copy() for w in rnn.get_weights()]
    callback = kr.callbacks.GradientFlossing(
        np.ones((4, 200, 1), "float32"), num_exponents=2, optimizer="sgd",
        probe_is_layer_input=True,
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        history = model.fit(
            x_task, np.zeros((8, 1)), batch_size=4, epochs=1, verbose=0, callbacks=[callback]
        )
    assert any("GradientFlossing" in str(w.message) for w in caught)
    assert len(callback.losses) == 2 and not np.any(np.isfinite(callback.losses))
    assert not np.isfinite(history.history["flossing_loss"][0])
    for before, after in zip(weights, rnn.get_weights()):
        np.testing.assert_array_equal(after, before)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"num_exponents": 0}, "num_exponents=0"),
        ({"targets": "0"}, "targets='0'"),
        ({"num_exponents": 2, "targets": [0.0, 0.1, 0.2]}, "num_exponents=2"),
        ({"weight": 0.0}, "weight=0.0"),
        ({"every_n_steps": 1.5}, "every_n_steps=1.5"),
        ({"until_epoch": -1}, "until_epoch=-1"),
        ({"qr_interval": "auto"}, "qr_interval='auto'"),
    ],
)
def test_invalid_arguments_name_the_argument(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        kr.callbacks.GradientFlossing(X[:4], **kwargs)


def test_an_update_with_a_finite_loss_and_non_finite_weights_is_undone():
    """A chaotic SimpleRNN (16 units, recurrent gain 8) flossed through its
    trajectory (trajectory_gradient=True) along 1000-step probes: on JAX one
    such step reports a finite loss and leaves every recurrent weight NaN
    (the gradient through e^(lambda_1 T) overflows). The callback once kept
    that step, because only a non-finite *loss* was undone."""
    rng = np.random.default_rng(0)
    probe = rng.normal(size=(2, 1000, 1)).astype("float32")
    rnn = keras.layers.SimpleRNN(16, recurrent_initializer=keras.initializers.RandomNormal(
        stddev=8 / np.sqrt(16), seed=1))
    # The task sees 20 steps (its own gradients stay finite), the flossing 1000.
    model = keras.Sequential([keras.Input((None, 1)), rnn, keras.layers.Dense(1)])
    model.compile(keras.optimizers.Adam(1e-3), "mse")
    callback = kr.callbacks.GradientFlossing(
        probe, num_exponents=2, trajectory_gradient=True, probe_is_layer_input=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(probe[:, :20], probe[:, 0, :1], epochs=1, batch_size=2, verbose=0,
                  callbacks=[callback])
    assert all(np.all(np.isfinite(w)) for w in rnn.get_weights())
    messages = [str(w.message) for w in caught if "GradientFlossing" in str(w.message)]
    assert all("undone" in m for m in messages), messages


def test_flossing_a_mixed_precision_model():
    # Under mixed_float16 the model's optimizer is a LossScaleOptimizer (it
    # failed at on_train_begin: no `learning_rate` in its config).
    keras.config.set_dtype_policy("mixed_float16")
    rnn = _chaotic()
    model = _model(rnn)
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    before = [w.copy() for w in rnn.get_weights()]
    callback = kr.callbacks.GradientFlossing(X[:8], num_exponents=2)
    history = model.fit(X, Y, batch_size=16, epochs=1, verbose=0, callbacks=[callback])
    assert np.all(np.isfinite(history.history["flossing_loss"]))
    assert all(w.dtype == "float32" for w in rnn.weights)
    assert any(not np.allclose(a, b) for a, b in zip(rnn.get_weights(), before))
    flossing = callback._floss_model.optimizer
    inner = getattr(flossing, "inner_optimizer", flossing)
    assert isinstance(inner, keras.optimizers.Adam)  # a copy of the task's Adam


class _Batches(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.seen = 0

    def on_train_batch_begin(self, batch, logs=None):
        self.seen += 1


def test_mismatches_with_the_probe_are_errors_before_the_first_step():
    # warmup=20 with 20-step probes used to fail after the first training batch.
    model = keras.Sequential([keras.Input((None, 2)), _chaotic(), keras.layers.Dense(1)])
    model.compile("sgd", "mse")
    batches = _Batches()
    flossing = kr.callbacks.GradientFlossing(X[:4, :20], num_exponents=2, warmup=20)
    with pytest.raises(ValueError, match=r"GradientFlossing: .*20 steps.*warmup.*\[0, timesteps - 1 = 19\]"):
        model.fit(X[:, :20], Y, epochs=1, verbose=0, callbacks=[batches, flossing])
    assert batches.seen == 0
    too_many = kr.callbacks.GradientFlossing(X[:4], num_exponents=17)
    with pytest.raises(ValueError, match=r"num_exponents.*\[1, state size = 16\]"):
        _model(_chaotic()).fit(X, Y, epochs=1, verbose=0, callbacks=[batches, too_many])
    assert batches.seen == 0


def test_errors_from_the_models_graph_name_gradient_flossing():
    class Subclassed(keras.Model):
        def __init__(self):
            super().__init__()
            self.rnn = _chaotic()
            self.head = keras.layers.Dense(1)

        def call(self, x):
            return self.head(self.rnn(x))

    inputs = keras.Input(X.shape[1:])
    outputs = keras.layers.Dense(1)(Subclassed()(inputs))
    model = keras.Model(inputs, outputs)
    model.compile("sgd", "mse")
    with pytest.raises(TypeError, match=r"^GradientFlossing: .*subclassed model"):
        model.fit(X, Y, epochs=1, verbose=0, callbacks=[kr.callbacks.GradientFlossing(X[:4])])


def test_the_layer_and_the_callback_share_one_trajectory_gradient_default():
    import inspect

    from keras_residual.dynamics.lyapunov import layer as lyapunov_exponents

    layer = inspect.signature(kr.layers.LyapunovExponents).parameters["trajectory_gradient"]
    callback = inspect.signature(kr.callbacks.GradientFlossing).parameters["trajectory_gradient"]
    assert layer.default is callback.default is lyapunov_exponents.TRAJECTORY_GRADIENT is False
