"""LyapunovExponents: finite-time exponents as a differentiable layer (gradient flossing)."""

import warnings

import keras
import numpy as np
import pytest

import keras_residual as kr
from keras_residual import residuals
from tests.helpers import check_layer
from tests.helpers import float64
from tests.helpers import gradients

RNG = np.random.default_rng(7)
X = RNG.normal(size=(3, 25, 2)).astype("float32")


def _recurrent(kind, dtype=None, gain=1.6):
    init = {
        "kernel_initializer": keras.initializers.GlorotUniform(seed=1),
        "recurrent_initializer": keras.initializers.Orthogonal(gain=gain, seed=2),
    }
    if kind == "simple":
        return keras.layers.SimpleRNN(5, dtype=dtype, **init)
    if kind == "gru":
        return keras.layers.GRU(4, dtype=dtype, **init)
    if kind == "lstm":
        return keras.layers.LSTM(3, dtype=dtype, **init)
    return kr.layers.WCRNN(
        6, coupling=0.6, residual=residuals.Rotational(angle_range=(0.1, 1.0), seed=3),
        dtype=dtype, **init,
    )


@pytest.mark.parametrize("kind", ["simple", "gru", "lstm", "wcrnn"])
@pytest.mark.parametrize("qr_interval, warmup", [(1, 0), (3, 4)])
def test_agrees_with_lyapunov_spectrum_per_sequence(kind, qr_interval, warmup):
    rnn = _recurrent(kind)
    rnn(X)
    layer = kr.layers.LyapunovExponents(rnn, num_exponents=3, warmup=warmup, qr_interval=qr_interval)
    exponents = keras.ops.convert_to_numpy(layer(X))
    spectrum = kr.dynamics.lyapunov_spectrum(
        rnn, X, num_exponents=3, warmup=warmup, qr_interval=qr_interval
    )
    assert exponents.shape == (3, 3) and layer.jacobian == "analytic"
    # float32, 25 steps; the spectrum's QRs run in float64, the layer's in
    # float32 (differentiable): a few float32 roundings per step apart.
    np.testing.assert_allclose(exponents, spectrum.per_sequence, atol=1e-4)


def test_shares_the_wrapped_layers_weights_and_flosses_it_in_fit():
    rnn = _recurrent("simple", gain=2.0)
    rnn(X)
    before = [np.array(w) for w in rnn.get_weights()]
    inputs = keras.Input(X.shape[1:])
    floss = keras.Model(inputs, kr.layers.LyapunovExponents(rnn, num_exponents=2)(inputs))
    assert {id(v) for v in floss.trainable_variables} == {id(v) for v in rnn.trainable_variables}
    floss.compile(keras.optimizers.Adam(1e-2), "mse")
    history = floss.fit(X, np.zeros((3, 2), "float32"), epochs=3, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    after = rnn.get_weights()
    assert any(not np.allclose(a, b) for a, b in zip(after, before)), "fit did not change the RNN"


@pytest.mark.parametrize("kind", ["simple", "lstm", "wcrnn"])
def test_gradients_match_central_finite_differences_in_float64(kind):
    x = X[:2, :15].astype("float64")
    with float64():
        rnn = _recurrent(kind, dtype="float64")
        rnn(x)
        # The exact gradient of the exponents: through the trajectory too.
        layer = kr.layers.LyapunovExponents(rnn, num_exponents=2, dtype="float64",
                                            trajectory_gradient=True)
        layer(x)
        # d/dW of sum(lambda^2): the flossing loss toward 0 (up to its mean).
        names = [v.path for v in layer.trainable_variables]
        grads = dict(zip(names, gradients(layer, x)))
        kernel = next(v for v in rnn.trainable_variables if "recurrent_kernel" in v.path)
        analytic = grads[kernel.path]
        value = np.array(keras.ops.convert_to_numpy(kernel))
        step = 1e-6
        for index in [(0, 0), (1, 2), (value.shape[0] - 1, value.shape[1] - 1)]:
            losses = []
            for sign in (1.0, -1.0):
                shifted = value.copy()
                shifted[index] += sign * step
                kernel.assign(shifted)
                out = keras.ops.convert_to_numpy(layer(x))
                losses.append(np.sum(out**2))
            kernel.assign(value)
            numeric = (losses[0] - losses[1]) / (2 * step)
            # Central differences: O(step^2) truncation, O(eps / step) = 1e-10
            # rounding on a loss of O(1); 1e-6 relative leaves room for both.
            np.testing.assert_allclose(analytic[index], numeric, rtol=1e-6, atol=1e-9,
                                       err_msg=f"{kind} {index}")


def test_a_keras_file_round_trip_keeps_the_layer_and_its_rnn():
    rnn = _recurrent("wcrnn")

    def factory():
        return kr.layers.LyapunovExponents(_recurrent("wcrnn"), num_exponents=2, warmup=2, seed=5)

    check_layer(factory, X, expected_output_shape=(3, 2), atol=1e-6)
    layer = factory()
    config = layer.get_config()
    assert config["num_exponents"] == 2 and config["warmup"] == 2 and config["seed"] == 5
    clone = kr.layers.LyapunovExponents.from_config(config)
    assert isinstance(clone.layer, kr.layers.WCRNN) and clone.layer is not rnn


def test_non_finite_exponents_are_reported_not_raised_in_fit():
    rnn = kr.layers.WCRNN(4, coupling=0.1, residual=residuals.Homogeneous(3.0))
    x = np.ones((2, 200, 1), "float32")
    rnn(x)
    inputs = keras.Input(x.shape[1:])
    floss = keras.Model(inputs, kr.layers.LyapunovExponents(rnn, num_exponents=2)(inputs))
    floss.compile("sgd", "mse")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        history = floss.fit(x, np.zeros((2, 2), "float32"), epochs=1, verbose=0)
    assert not np.isfinite(history.history["loss"][0])


def test_invalid_arguments_are_clear_errors():
    rnn = _recurrent("simple")
    with pytest.raises(ValueError, match="qr_interval='auto'"):
        kr.layers.LyapunovExponents(rnn, qr_interval="auto")
    with pytest.raises(ValueError, match=r"num_exponents.*\[1, state size = 5\]"):
        kr.layers.LyapunovExponents(rnn, num_exponents=6)
    with pytest.raises(TypeError, match="cell_or_layer"):
        kr.layers.LyapunovExponents(keras.layers.Dense(3))
    with pytest.raises(ValueError, match=r"warmup.*\[0, timesteps - 1 = 24\]"):
        kr.layers.LyapunovExponents(rnn, warmup=30)(X)
    with pytest.raises(ValueError, match="rank|sequences"):
        kr.layers.LyapunovExponents(rnn)(X[:, 0])


def _stacked(dtype=None):
    return keras.layers.RNN(
        [keras.layers.SimpleRNNCell(3, dtype=dtype), keras.layers.LSTMCell(2, dtype=dtype)],
        dtype=dtype,
    )


MAKERS = {
    "simple": lambda: _recurrent("simple"),
    "lstm": lambda: _recurrent("lstm"),
    "wcrnn": lambda: _recurrent("wcrnn"),
    "stacked": _stacked,
}
HALF_EPS = {"float16": 2.0**-10, "bfloat16": 2.0**-7}


@pytest.mark.parametrize("kind", sorted(MAKERS))
@pytest.mark.parametrize("where", ["layer_float16", "global_float16", "global_bfloat16"])
def test_mixed_precision_computes_in_float32_and_returns_the_compute_dtype(kind, where):
    """Under a mixed policy (of this layer, or global so that the wrapped
    RNN is mixed too) the exponents are the float32 ones, cast to the
    compute dtype (it used to fail: AddV2 float vs half on tensorflow, Float
    vs Half on torch; float32 where the spec said float16 on jax; a
    half-precision QR under a global policy)."""
    reference_rnn = MAKERS[kind]()
    reference_rnn(X)
    reference = keras.ops.convert_to_numpy(
        kr.layers.LyapunovExponents(reference_rnn, num_exponents=2)(X)).astype("float64")
    half = "bfloat16" if where.endswith("bfloat16") else "float16"
    if where == "layer_float16":
        rnn, layer_dtype = reference_rnn, "mixed_float16"
    else:
        keras.config.set_dtype_policy(f"mixed_{half}")
        rnn, layer_dtype = MAKERS[kind](), None
        rnn(X)
        rnn.set_weights(reference_rnn.get_weights())
    layer = kr.layers.LyapunovExponents(rnn, num_exponents=2, dtype=layer_dtype)
    out = layer(X)
    spec = layer.compute_output_spec(keras.KerasTensor(X.shape, "float32"))
    assert keras.backend.standardize_dtype(out.dtype) == spec.dtype == half
    assert all(w.dtype == "float32" for w in rnn.weights)
    # The float32 exponents rounded once to the half dtype: within one
    # rounding (relative eps of the half dtype) of the float32 reference.
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(keras.ops.cast(out, "float32")), reference,
        rtol=HALF_EPS[half], atol=1e-6,
    )


def test_flossing_a_mixed_precision_rnn_trains_its_float32_weights():
    keras.config.set_dtype_policy("mixed_float16")
    rnn = _recurrent("wcrnn")
    rnn(X)
    before = [np.array(w) for w in rnn.get_weights()]
    inputs = keras.Input(X.shape[1:])
    floss = keras.Model(inputs, kr.layers.LyapunovExponents(rnn, num_exponents=2)(inputs))
    floss.compile(keras.optimizers.Adam(1e-2), "mse")
    history = floss.fit(X, np.zeros((3, 2), "float32"), epochs=2, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    after = rnn.get_weights()
    assert all(w.dtype == "float32" for w in rnn.weights)
    assert any(not np.allclose(a, b) for a, b in zip(after, before)), "fit did not change the RNN"


def test_an_empty_batch_gives_an_empty_result_and_zero_steps_an_error():
    rnn = _recurrent("lstm")
    layer = kr.layers.LyapunovExponents(rnn, num_exponents=2)
    empty = layer(X[:0])
    assert tuple(empty.shape) == (0, 2)  # as Keras' own layers answer an empty batch
    with pytest.raises(ValueError, match=r"`inputs` must have at least one time step.*\(3, 0, 2\)"):
        kr.layers.LyapunovExponents(_recurrent("simple"))(X[:, :0])


def test_a_registered_tangent_map_of_the_wrong_width_is_an_error_naming_it():
    class Halving(keras.layers.Layer):
        state_size = 3

        def call(self, x, states):
            h = 0.5 * states[0] + keras.ops.tanh(x[:, :1])
            return h, [h]

    @kr.dynamics.register_tangent(Halving)
    def halving_tangent(cell, inputs, states, tangents, input_tangents=None):
        h = 0.5 * states[0] + keras.ops.tanh(inputs[:, :1])
        return [h], 0.5 * tangents[:, :2]  # two rows of three: wrong

    with pytest.raises(ValueError, match=r"halving_tangent, registered for Halving.*\(1, 2, 3\).*\(1, 3, 3\)"):
        kr.layers.LyapunovExponents(keras.layers.RNN(Halving()))(X)
