"""Tangent maps of recurrent cells against the backend's forward-mode autodiff."""

import keras
import numpy as np
import pytest

import keras_residual as kr
from keras_residual import residuals
from keras_residual.dynamics.lyapunov import tangents
from keras_residual.dynamics.lyapunov._backends import get_backend
from tests.helpers import float64

FEATURES, UNITS, K, BATCH = 3, 4, 5, 3


def _init(seed):
    return {
        "kernel_initializer": keras.initializers.GlorotUniform(seed=seed),
        "recurrent_initializer": keras.initializers.Orthogonal(gain=1.4, seed=seed + 1),
    }


CELLS = {
    "simple_tanh": lambda: keras.layers.SimpleRNNCell(
        UNITS, bias_initializer="random_normal", dtype="float64", **_init(1)),
    "simple_sigmoid_no_bias": lambda: keras.layers.SimpleRNNCell(
        UNITS, activation="sigmoid", use_bias=False, dtype="float64", **_init(2)),
    "gru_reset_after": lambda: keras.layers.GRUCell(
        UNITS, bias_initializer="random_normal", dtype="float64", **_init(3)),
    "gru_reset_before": lambda: keras.layers.GRUCell(
        UNITS, reset_after=False, bias_initializer="random_normal", dtype="float64", **_init(4)),
    "gru_no_bias": lambda: keras.layers.GRUCell(UNITS, use_bias=False, dtype="float64", **_init(5)),
    "lstm": lambda: keras.layers.LSTMCell(
        UNITS, bias_initializer="random_normal", dtype="float64", **_init(6)),
    "lstm_relu_no_bias": lambda: keras.layers.LSTMCell(
        UNITS, activation="relu", use_bias=False, dtype="float64", **_init(7)),
    "wcrnn_rotational": lambda: kr.layers.WCRNNCell(
        UNITS, coupling=0.7, residual=residuals.Rotational(angle_range=(0.1, 1), seed=1),
        bias_initializer="random_normal", dtype="float64", **_init(8)),
    "wcrnn_dense_relu": lambda: kr.layers.WCRNNCell(
        UNITS, coupling=0.5, activation="relu", residual=residuals.Dense(seed=2),
        bias_initializer="random_normal", dtype="float64", **_init(9)),
    "wcrnn_nonlinear": lambda: kr.layers.WCRNNCell(
        UNITS, coupling=0.5, residual=residuals.Nonlinear(residuals.Heterogeneous(seed=3)),
        dtype="float64", **_init(10)),
    "wcrnn_no_residual": lambda: kr.layers.WCRNNCell(
        UNITS, coupling=1.0, residual=None, dtype="float64", **_init(11)),
    "stacked": lambda: keras.layers.StackedRNNCells([
        keras.layers.LSTMCell(UNITS, dtype="float64", **_init(12)),
        keras.layers.GRUCell(UNITS + 1, dtype="float64", **_init(13)),
        kr.layers.WCRNNCell(UNITS, coupling=0.6, residual=residuals.Homogeneous(0.9),
                            dtype="float64", **_init(14)),
    ], dtype="float64"),
}


def _sizes(cell):
    return [int(s) for s in keras.tree.flatten(cell.state_size)]


def _tangent_and_autodiff(cell, seed=0):
    """(analytic new states, analytic Z, autodiff new state, autodiff Z), float64."""
    rng = np.random.default_rng(seed)
    backend = get_backend()
    sizes = _sizes(cell)
    total = sum(sizes)
    x = rng.normal(size=(BATCH, FEATURES))
    s = 0.5 * rng.normal(size=(BATCH, total))
    Q = rng.normal(size=(BATCH, total, K))
    with float64():
        keras.layers.RNN(cell)(x[:, None, :])  # builds the cell in float64
        bounds = np.cumsum([0] + sizes)

        def split(v):
            return [v[:, int(a):int(b)] for a, b in zip(bounds[:-1], bounds[1:])]

        def pack(parts):
            if isinstance(cell.state_size, int):
                return parts
            return keras.tree.pack_sequence_as(cell.state_size, parts)

        def step(v):
            _, new = cell.call(xt, pack(split(v)), training=False)
            parts = keras.tree.flatten(new)
            return parts[0] if len(parts) == 1 else keras.ops.concatenate(parts, axis=-1)

        xt = keras.ops.convert_to_tensor(x, "float64")
        st = keras.ops.convert_to_tensor(s, "float64")
        Qt = keras.ops.convert_to_tensor(Q, "float64")
        new_states, Z = tangents.tangent_map(cell)(xt, split(st), Qt)
        auto_state, auto_Z = backend.tangent_map(step, st, Qt)
        numpy = keras.ops.convert_to_numpy
        flat = np.concatenate([numpy(p) for p in new_states], axis=-1)
        return flat, numpy(Z), numpy(auto_state), numpy(auto_Z)


@pytest.mark.parametrize("name", sorted(CELLS))
def test_tangent_maps_agree_with_forward_mode_autodiff(name):
    cell = CELLS[name]()
    assert tangents.tangent_map(cell) is not None, name
    state, Z, auto_state, auto_Z = _tangent_and_autodiff(cell)
    assert Z.dtype == np.float64 and Z.shape == auto_Z.shape == (BATCH, sum(_sizes(cell)), K)
    # float64 end to end (both sides): 1e-8 of the largest entry leaves room
    # for a few hundred roundings of 1e-16 in sums of O(10) terms.
    scale = np.abs(auto_Z).max()
    np.testing.assert_allclose(Z, auto_Z, rtol=0, atol=1e-8 * scale)
    np.testing.assert_allclose(state, auto_state, rtol=0, atol=1e-12 * max(1.0, np.abs(auto_state).max()))


def test_cells_without_a_map_take_autodiff_and_own_maps_are_used():
    assert tangents.tangent_map(keras.layers.SimpleRNNCell(3, activation="softsign")) is None
    assert tangents.tangent_map(kr.layers.WCRNNCell(3, activation="softplus")) is None
    stacked = keras.layers.StackedRNNCells([keras.layers.LSTMCell(3), kr.dynamics.MapCell(
        lambda h, x: h, state_size=3)])
    assert tangents.tangent_map(stacked) is None

    class Subclassed(keras.layers.SimpleRNNCell):
        pass

    # A subclass may change the step: the registered map is for the exact class.
    assert tangents.tangent_map(Subclassed(3)) is None
    cell = kr.layers.WCRNNCell(3)
    assert tangents.tangent_map(cell) == cell.tangent


@pytest.mark.parametrize("name", ["gru_reset_after", "lstm", "stacked", "wcrnn_rotational"])
def test_layers_take_the_analytic_path_and_agree_with_autodiff(name):
    cell = CELLS[name]()
    layer = keras.layers.RNN(cell, dtype="float64")
    x = np.random.default_rng(1).normal(size=(2, 60, FEATURES))
    with float64():
        layer(x)
    analytic = kr.dynamics.lyapunov_spectrum(layer, x, warmup=5, dtype="float64")
    autodiff = kr.dynamics.lyapunov_spectrum(layer, x, warmup=5, dtype="float64", jacobian="autodiff")
    assert analytic.jacobian == "analytic" and autodiff.jacobian == "autodiff"
    # The same float64 products in another order, through 60 QRs.
    np.testing.assert_allclose(analytic.per_sequence, autodiff.per_sequence, rtol=0, atol=1e-9)


def test_keras_layers_use_their_cells_map():
    x = np.random.default_rng(2).normal(size=(2, 30, FEATURES)).astype("float32")
    for layer in (keras.layers.SimpleRNN(UNITS), keras.layers.GRU(UNITS), keras.layers.LSTM(UNITS)):
        layer(x)
        assert kr.dynamics.lyapunov_spectrum(layer, x).jacobian == "analytic", layer.name


@pytest.mark.parametrize("reset_after", [True, False])
def test_gru_spectrum_matches_the_numpy_reference(reset_after):
    layer = keras.layers.GRU(
        UNITS, reset_after=reset_after, bias_initializer="random_normal", **_init(20)
    )
    x = np.random.default_rng(3).normal(size=(3, 80, FEATURES)).astype("float32")
    layer(x)
    reference = kr.dynamics.lyapunov_spectrum_numpy(layer, x, warmup=5)
    spectrum = kr.dynamics.lyapunov_spectrum(layer, x, warmup=5)
    # float32 against float64 over 80 steps of a contracting GRU.
    np.testing.assert_allclose(spectrum.per_sequence, reference.per_sequence, atol=1e-4)


class _Leaky(keras.layers.Layer):
    """h_t = 0.5 h_{t-1} + tanh(x_t): J = 0.5 I, every exponent log 0.5."""

    state_size = 2

    def call(self, x, states):
        h = 0.5 * states[0] + keras.ops.tanh(x)
        return h, [h]


def test_register_tangent_adds_an_analytic_map_that_the_spectrum_uses():
    calls = []

    @kr.dynamics.register_tangent(_Leaky)
    def leaky_tangent(cell, inputs, states, tangents, input_tangents=None):
        calls.append(1)
        return [0.5 * states[0] + keras.ops.tanh(inputs)], 0.5 * tangents

    x = np.random.default_rng(4).normal(size=(3, 40, 2)).astype("float32")
    spectrum = kr.dynamics.lyapunov_spectrum(_Leaky(), x)
    assert spectrum.jacobian == "analytic" and calls
    # log 0.5 exactly up to float32 rounding of 0.5 * Q (none) and the QRs'.
    np.testing.assert_allclose(spectrum.per_sequence, np.log(0.5), atol=1e-6)
    autodiff = kr.dynamics.lyapunov_spectrum(_Leaky(), x, jacobian="autodiff")
    np.testing.assert_allclose(autodiff.per_sequence, spectrum.per_sequence, atol=1e-6)
    # A layer resolves to its cell's map.
    assert tangents.tangent_map(keras.layers.RNN(_Leaky())) is not None


def test_a_registered_map_with_the_wrong_output_is_an_error_naming_it():
    class Wide(_Leaky):
        pass

    @kr.dynamics.register_tangent(Wide)
    def wide_tangent(cell, inputs, states, tangents, input_tangents=None):
        # Z with three rows for a state of two: gave three equal exponents on
        # torch and errors deep in the loop on tensorflow and jax.
        return [0.5 * states[0]], keras.ops.concatenate([tangents, tangents[:, :1]], axis=1)

    x = np.zeros((2, 10, 2), "float32")
    with pytest.raises(ValueError, match=r"wide_tangent, registered for Wide.*\(1, 3, 2\).*\(1, 2, 2\)"):
        kr.dynamics.lyapunov_spectrum(Wide(), x)

    class Bare(_Leaky):
        pass

    @kr.dynamics.register_tangent(Bare)
    def bare_tangent(cell, inputs, states, tangents, input_tangents=None):
        return 0.5 * tangents  # not (new_states, Z)

    with pytest.raises(TypeError, match="bare_tangent.*must return \\(new_states, Z\\)"):
        kr.dynamics.lyapunov_spectrum(Bare(), x)


def test_register_tangent_and_tangent_map_refuse_what_they_cannot_use():
    for bad in (5, "LSTMCell", keras.layers.LSTMCell(2), int):
        with pytest.raises(TypeError, match="`cell_class` of register_tangent"):
            kr.dynamics.register_tangent(bad)
    with pytest.raises(TypeError, match="decorates a function"):
        kr.dynamics.register_tangent(_Leaky)(3)
    for bad in (keras.layers.Dense(3), "lstm", None):
        with pytest.raises(TypeError, match="`cell` of tangent_map"):
            tangents.tangent_map(bad)
    # A Keras RNN layer answers with its cell's map (it used to answer None).
    for layer in (keras.layers.LSTM(4), keras.layers.GRU(3), kr.layers.WCRNN(4)):
        assert tangents.tangent_map(layer) is not None, layer.name
