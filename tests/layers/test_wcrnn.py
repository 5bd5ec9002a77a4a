import keras
import numpy as np
import pytest

import keras_residual as kr
from keras_residual import residuals
from tests.helpers import assert_backends_agree
from tests.helpers import spans_backends
from tests.helpers import check_layer
from tests.helpers import gradients

UNITS = 6
RNG = np.random.default_rng(1)
X = RNG.normal(size=(3, 15, 2)).astype("float32")

RESIDUALS = {
    "none": lambda: None,
    "identity": lambda: "identity",
    "homogeneous": lambda: residuals.Homogeneous(0.9),
    "heterogeneous": lambda: residuals.Heterogeneous(radius_range=(0.5, 1.0), seed=1),
    "rotational": lambda: residuals.Rotational(radius=0.95, angle_range=(0.1, 1.0), seed=3),
    "dense": lambda: residuals.Dense("orthogonal", scale=0.9, seed=4),
    "nonlinear": lambda: residuals.Nonlinear(residuals.Homogeneous(0.9)),
}


def pair(residual, activation="tanh", **rnn_kwargs):
    """A fused WCRNN and the generic RNN(WCRNNCell) with the same weights."""
    fused = kr.layers.WCRNN(UNITS, coupling=0.4, residual=residual, activation=activation,
                            bias_initializer="random_normal", **rnn_kwargs)
    fused(X)
    generic = keras.layers.RNN(
        kr.layers.WCRNNCell(UNITS, coupling=0.4, residual=residual, activation=activation), **rnn_kwargs
    )
    generic(X)
    generic.set_weights(fused.get_weights())
    return fused, generic


def numpy_outputs(layer, x):
    return [keras.ops.convert_to_numpy(o) for o in keras.tree.flatten(layer(x))]


@pytest.mark.parametrize("name", sorted(RESIDUALS))
@pytest.mark.parametrize(
    "options",
    [
        {"return_sequences": True},
        {"return_sequences": False, "return_state": True},
        {"return_sequences": True, "go_backwards": True},
    ],
    ids=["sequences", "state", "backwards"],
)
def test_fused_equals_generic_outputs_and_gradients(name, options):
    fused, generic = pair(RESIDUALS[name](), **options)
    for a, b in zip(numpy_outputs(fused, X), numpy_outputs(generic, X)):
        np.testing.assert_allclose(a, b, atol=1e-5)
    for a, b in zip(gradients(fused, X), gradients(generic, X)):
        np.testing.assert_allclose(a, b, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("activation", ["sigmoid", "relu", "linear"])
def test_fused_equals_generic_for_other_activations(activation):
    fused, generic = pair(residuals.Rotational(radius=0.9, angle=0.5), activation=activation,
                          return_sequences=True)
    assert fused.uses_fused_kernel()
    np.testing.assert_allclose(numpy_outputs(fused, X)[0], numpy_outputs(generic, X)[0], atol=1e-5)
    for a, b in zip(gradients(fused, X), gradients(generic, X)):
        np.testing.assert_allclose(a, b, atol=1e-4, rtol=1e-4)


def test_trainable_residual_gets_gradients():
    layer = kr.layers.WCRNN(UNITS, residual=residuals.Heterogeneous(seed=0), residual_trainable=True)
    layer(X)
    reference = keras.layers.RNN(
        kr.layers.WCRNNCell(UNITS, residual=residuals.Heterogeneous(seed=0), residual_trainable=True)
    )
    reference(X)
    reference.set_weights(layer.get_weights())
    names = [v.name for v in layer.trainable_variables]
    assert "residual_radii" in names
    grads = gradients(layer, X)
    for a, b in zip(grads, gradients(reference, X)):
        np.testing.assert_allclose(a, b, atol=1e-4, rtol=1e-4)
    assert np.abs(grads[names.index("residual_radii")]).max() > 0


def test_fused_kernel_is_used_and_fallbacks_are_documented_cases():
    layer = kr.layers.WCRNN(UNITS, residual=residuals.Rotational(angle=0.3))
    assert layer.uses_fused_kernel()
    assert layer.uses_fused_kernel(training=True)
    assert not layer.uses_fused_kernel(mask=np.ones((3, 15), bool))
    assert not kr.layers.WCRNN(UNITS, unroll=True).uses_fused_kernel()
    rec = kr.layers.WCRNN(UNITS, recurrent_dropout=0.2)
    assert rec.uses_fused_kernel(training=False) and not rec.uses_fused_kernel(training=True)


def test_unroll_and_stateful():
    fused, generic = pair("identity", return_sequences=True)
    unrolled = kr.layers.WCRNN(UNITS, coupling=0.4, return_sequences=True, unroll=True)
    unrolled(X)
    unrolled.set_weights(fused.get_weights())
    np.testing.assert_allclose(numpy_outputs(unrolled, X)[0], numpy_outputs(fused, X)[0], atol=1e-5)

    stateful = kr.layers.WCRNN(UNITS, coupling=0.4, stateful=True)
    stateful(X[:, :7])
    stateful.reset_state()
    stateful.set_weights(fused.get_weights()[:3])
    stateful(X[:, :7])
    second = numpy_outputs(stateful, X[:, 7:])[0]
    whole = numpy_outputs(fused, X)[0][:, -1]
    np.testing.assert_allclose(second, whole, atol=1e-5)


def test_initial_state_is_used():
    fused, generic = pair(residuals.Homogeneous(0.5))
    h0 = RNG.normal(size=(3, UNITS)).astype("float32")
    a = keras.ops.convert_to_numpy(fused(X, initial_state=[h0]))
    b = keras.ops.convert_to_numpy(generic(X, initial_state=[h0]))
    np.testing.assert_allclose(a, b, atol=1e-5)
    assert not np.allclose(a, keras.ops.convert_to_numpy(fused(X)))


def test_masking_matches_simple_rnn():
    x = X.copy()
    x[0, 10:] = 0.0
    x[1, 5:] = 0.0
    layer = kr.layers.WCRNN(UNITS, coupling=1.0, residual=None, return_sequences=True)
    simple = keras.layers.SimpleRNN(UNITS, return_sequences=True)
    masked = keras.Sequential([keras.Input((15, 2)), keras.layers.Masking(0.0), layer])
    masked_simple = keras.Sequential([keras.Input((15, 2)), keras.layers.Masking(0.0), simple])
    simple.set_weights(layer.get_weights())
    a, b = numpy_outputs(masked, x)[0], numpy_outputs(masked_simple, x)[0]
    np.testing.assert_allclose(a, b, atol=1e-5)
    # Masked steps carry the state: the last output equals the last unmasked one.
    np.testing.assert_allclose(a[1, -1], a[1, 4], atol=1e-6)


@pytest.mark.parametrize("kind", ["dropout", "recurrent_dropout"])
def test_dropout_matches_simple_rnn(kind):
    layer = kr.layers.WCRNN(UNITS, coupling=1.0, residual=None, seed=7, **{kind: 0.5})
    simple = keras.layers.SimpleRNN(UNITS, seed=7, **{kind: 0.5})
    layer(X)
    simple(X)
    simple.set_weights(layer.get_weights())
    train = keras.ops.convert_to_numpy(layer(X, training=True))
    np.testing.assert_allclose(train, keras.ops.convert_to_numpy(simple(X, training=True)), atol=1e-5)
    infer = keras.ops.convert_to_numpy(layer(X))
    np.testing.assert_allclose(infer, keras.ops.convert_to_numpy(simple(X)), atol=1e-5)
    assert not np.allclose(train, infer)


def test_layer_checks():
    check_layer(
        lambda: kr.layers.WCRNN(UNITS, residual=residuals.Rotational(angle=0.3, seed=0), dropout=0.1,
                                return_sequences=True),
        X,
        (3, 15, UNITS),
    )


def test_layer_checks_with_state_output():
    check_layer(
        lambda: kr.layers.WCRNN(UNITS, residual=residuals.Heterogeneous(seed=0), return_state=True),
        X,
        [(3, UNITS), (3, UNITS)],
        mixed_precision=False,
    )


def test_properties_and_config():
    layer = kr.layers.WCRNN(8, coupling=0.05, residual=residuals.Homogeneous(0.9), go_backwards=True)
    assert layer.units == 8 and layer.coupling == 0.05
    assert isinstance(layer.residual, residuals.Homogeneous)
    config = layer.get_config()
    assert config["coupling"] == 0.05 and config["go_backwards"] is True
    assert "cell" not in config
    clone = kr.layers.WCRNN.from_config(config)
    assert clone.residual.radius == 0.9


def test_invalid_arguments_raise():
    with pytest.raises(ValueError, match="units=-3"):
        kr.layers.WCRNN(-3)
    with pytest.raises(ValueError, match="coupling=inf"):
        kr.layers.WCRNN(4, coupling=float("inf"))
    with pytest.raises(ValueError, match="even number of units.*units=3"):
        kr.layers.WCRNN(3, residual=residuals.Rotational(angle=0.1))
    with pytest.raises(ValueError, match="expected ndim=3"):
        kr.layers.WCRNN(4)(np.zeros((2, 3), "float32"))


def test_fit_learns_a_memory_task():
    # Recall the first input after 20 steps: a fading-memory net near
    # criticality should fit it quickly.
    rng = np.random.default_rng(0)
    x = rng.normal(size=(128, 20, 1)).astype("float32")
    y = x[:, 0, :]
    model = keras.Sequential([
        keras.Input((20, 1)),
        kr.layers.WCRNN(16, coupling=0.3, residual=residuals.Homogeneous(1.0)),
        keras.layers.Dense(1),
    ])
    model.compile(keras.optimizers.Adam(1e-2), "mse")
    history = model.fit(x, y, epochs=30, batch_size=32, verbose=0)
    assert history.history["loss"][-1] < 0.3 * history.history["loss"][0]


CROSS_BACKEND = """
from keras_residual import layers, residuals
import numpy as np

def make():
    return {
        "fused_rotational": layers.WCRNN(8, coupling=0.3, residual=residuals.Rotational(angle_range=(0.1, 1.0), seed=1), return_sequences=True),
        "fused_heterogeneous": layers.WCRNN(8, coupling=0.3, residual=residuals.Heterogeneous(seed=2), go_backwards=True),
        "fused_dense_state": layers.WCRNN(8, coupling=0.3, residual=residuals.Dense(seed=3), return_state=True),
        "cell_nonlinear": keras.layers.RNN(layers.WCRNNCell(8, coupling=0.3, residual=residuals.Nonlinear()), return_sequences=True),
    }
"""


@spans_backends
def test_outputs_agree_across_backends():
    assert_backends_agree(CROSS_BACKEND, RNG.normal(size=(2, 30, 3)).astype("float32"))
