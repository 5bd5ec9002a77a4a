import keras
import numpy as np
import pytest

import keras_residual as kr
from keras_residual import residuals
from tests.helpers import check_layer
from tests.helpers import batch_jacobian
from tests.test_residuals import numpy_rotation

UNITS = 6
RNG = np.random.default_rng(0)
X = RNG.normal(size=(3, 12, 2)).astype("float32")


def weights_by_name(cell):
    return {w.path.split("/")[-1]: keras.ops.convert_to_numpy(w) for w in cell.weights}


def numpy_R(residual, w):
    """R rebuilt in NumPy from the cell's residual weights (not from `matrix()`)."""
    if isinstance(residual, residuals.Identity):
        return np.eye(UNITS)
    if isinstance(residual, residuals.Homogeneous):
        return float(w["residual_radius"]) * np.eye(UNITS)
    if isinstance(residual, residuals.Heterogeneous):
        return np.diag(w["residual_radii"])
    if isinstance(residual, residuals.Rotational):
        return numpy_rotation(w["residual_radii"], w["residual_angles"])
    if isinstance(residual, residuals.Dense):
        return w["residual_kernel"].T
    raise TypeError(residual)


def numpy_wcrnn(x, w, R, coupling, phi=None, activation=np.tanh):
    """The update equation, column convention, step by step in float64."""
    U, W, b = w["kernel"], w["recurrent_kernel"], w.get("bias", 0.0)
    h = np.zeros((x.shape[0], U.shape[1]))
    outputs = []
    for t in range(x.shape[1]):
        a = (U.T @ x[:, t].T + W.T @ h.T).T + b
        memory = 0.0 if R is None else (R @ (phi(h) if phi else h).T).T
        h = memory + coupling * activation(a)
        outputs.append(h)
    return np.stack(outputs, axis=1)


RESIDUALS = {
    "none": lambda: None,
    "identity": lambda: residuals.Identity(),
    "homogeneous": lambda: residuals.Homogeneous(0.9),
    "heterogeneous": lambda: residuals.Heterogeneous(radius_range=(0.5, 1.0), seed=1),
    "rotational": lambda: residuals.Rotational(radius=0.95, angle=2 * np.pi / 28),
    "rotational_drawn": lambda: residuals.Rotational(angle_range=(0.1, 2.0), radius_range=(0.8, 1.0), seed=2),
    "dense": lambda: residuals.Dense("orthogonal", scale=0.9, seed=4),
    "nonlinear": lambda: residuals.Nonlinear(residuals.Rotational(radius=0.9, angle=0.3), "tanh"),
}


@pytest.mark.parametrize("name", sorted(RESIDUALS))
def test_outputs_match_numpy_update_equation(name):
    cell = kr.layers.WCRNNCell(UNITS, coupling=0.3, residual=RESIDUALS[name](), bias_initializer="random_normal")
    rnn = keras.layers.RNN(cell, return_sequences=True)
    out = keras.ops.convert_to_numpy(rnn(X))
    w = weights_by_name(cell)
    if name == "nonlinear":
        R, phi = numpy_rotation(w["residual_radii"], w["residual_angles"]), np.tanh
    else:
        R, phi = (None if cell.residual is None else numpy_R(cell.residual, w)), None
    expected = numpy_wcrnn(X.astype("float64"), w, R, 0.3, phi=phi)
    np.testing.assert_allclose(out, expected, atol=2e-5)


def test_no_residual_unit_coupling_is_simple_rnn_cell():
    cell = kr.layers.WCRNNCell(UNITS, coupling=1.0, residual=None)
    ours = keras.layers.RNN(cell, return_sequences=True)
    ours(X)
    simple = keras.layers.RNN(keras.layers.SimpleRNNCell(UNITS), return_sequences=True)
    simple(X)
    simple.set_weights(ours.get_weights())
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(ours(X)), keras.ops.convert_to_numpy(simple(X)), atol=1e-6
    )


@pytest.mark.parametrize("name", sorted(RESIDUALS))
@pytest.mark.parametrize("activation", ["tanh", "sigmoid", "relu"])
def test_jacobian_against_autodiff(name, activation):
    cell = kr.layers.WCRNNCell(UNITS, coupling=0.7, residual=RESIDUALS[name](), activation=activation)
    x = RNG.normal(size=(3, 2)).astype("float32")
    h = (RNG.normal(size=(3, UNITS)) * 0.5).astype("float32")
    cell.build(x.shape)
    J = keras.ops.convert_to_numpy(cell.jacobian(x, [h]))
    assert J.shape == (3, UNITS, UNITS)
    expected = batch_jacobian(lambda state, inputs: cell.call(inputs, [state])[0], h, x)
    np.testing.assert_allclose(J, expected, atol=1e-5)
    assert np.abs(J).max() > 0.1  # a real Jacobian, not zeros on both sides


def test_jacobian_without_known_derivative_raises():
    cell = kr.layers.WCRNNCell(4, activation="softplus")
    assert not cell.has_analytic_jacobian
    with pytest.raises(NotImplementedError, match="softplus"):
        cell.jacobian(np.zeros((1, 2), "float32"), [np.zeros((1, 4), "float32")])


def test_residual_weights_fixed_by_default_and_trainable_on_request():
    fixed = kr.layers.WCRNNCell(4, residual=residuals.Heterogeneous(seed=0))
    fixed.build((None, 2))
    assert [w.name for w in fixed.non_trainable_weights] == ["residual_radii"]
    trainable = kr.layers.WCRNNCell(4, residual=residuals.Heterogeneous(seed=0), residual_trainable=True)
    trainable.build((None, 2))
    assert "residual_radii" in [w.name for w in trainable.trainable_weights]


def test_cell_owns_a_copy_of_the_residual():
    rho = residuals.Rotational(angle=0.3)
    a, b = kr.layers.WCRNNCell(4, residual=rho), kr.layers.WCRNNCell(4, residual=rho)
    assert a.residual is not rho and a.residual is not b.residual
    assert not rho.built


@pytest.mark.parametrize(
    "residual",
    [residuals.Rotational(angle=0.2, seed=1), residuals.Heterogeneous(seed=1), None],
    ids=["rotational", "heterogeneous", "none"],
)
def test_layer_checks(residual):
    check_layer(
        lambda: keras.layers.RNN(kr.layers.WCRNNCell(UNITS, residual=residual, dropout=0.1), return_sequences=True),
        X,
        (3, 12, UNITS),
    )


def test_sequential_keras_round_trip(tmp_path):
    model = keras.Sequential(
        [
            keras.Input((12, 2)),
            keras.layers.RNN(kr.layers.WCRNNCell(UNITS, residual=residuals.Heterogeneous(radius_range=(0.2, 1.0)))),
            keras.layers.Dense(3),
        ]
    )
    path = str(tmp_path / "model.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    # The drawn radii (seed=None) travel with the weights, not the config.
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(loaded(X)), keras.ops.convert_to_numpy(model(X)), atol=1e-6
    )
    np.testing.assert_allclose(
        loaded.layers[0].cell.residual.matrix(), model.layers[0].cell.residual.matrix()
    )


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"units": 0}, "units=0"),
        ({"units": 2.5}, "units=2.5"),
        ({"units": 4, "coupling": -0.1}, "coupling=-0.1"),
        ({"units": 4, "coupling": float("nan")}, "coupling=nan"),
        ({"units": 4, "coupling": "weak"}, "coupling='weak'"),
        ({"units": 4, "dropout": 1.5}, "dropout=1.5"),
        ({"units": 4, "recurrent_dropout": -0.2}, "recurrent_dropout=-0.2"),
        ({"units": 5, "residual": residuals.Rotational(angle=0.1)}, "even number of units.*units=5"),
        ({"units": 4, "residual": "rotation"}, "Unknown residual"),
        ({"units": 4, "dropout": 1.0}, r"\[0.0, 1.0\).*dropout=1.0"),
        ({"units": 4, "dropout": "0.1"}, "dropout='0.1'"),
        ({"units": 4, "coupling": [0.1]}, r"coupling=\[0.1\]"),
        ({"units": 4, "coupling": True}, "coupling=True"),
        ({"units": True}, "units=True"),
        ({"units": 4, "seed": -1}, "seed=-1"),
        ({"units": 4, "use_bias": "yes"}, "use_bias='yes'"),
    ],
)
def test_invalid_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        kr.layers.WCRNNCell(**kwargs)


def test_numpy_scalars_are_accepted_like_python_numbers():
    cell = kr.layers.WCRNNCell(
        np.int64(4), coupling=np.float32(0.05), dropout=np.float32(0.1),
        recurrent_dropout=np.float64(0.2), seed=np.int32(3),
    )
    assert (cell.units, cell.coupling, cell.dropout, cell.recurrent_dropout, cell.seed) == (
        4, 0.05, 0.1, 0.2, 3
    )
    assert all(type(v) in (int, float) for v in (cell.units, cell.coupling, cell.seed))


def test_heterogeneous_radii_mismatch_raises_at_build():
    cell = kr.layers.WCRNNCell(4, residual=residuals.Heterogeneous(radii=[0.5, 0.6]))
    with pytest.raises(ValueError, match="2 `radii` for a layer of units=4"):
        keras.layers.RNN(cell)(X)


@pytest.mark.parametrize("length", [5, 20])
def test_the_steps_constants_are_prepared_once_per_call(length, monkeypatch):
    """Keras' RNN prepares the step's constants (the residual's form, as a
    product where the backend prefers one) once, before its loop, with the dropout masks: their
    count does not grow with the number of steps, in a call or in training,
    and none outlives the call."""
    from keras_residual.layers import wcrnn_cell

    calls = []
    original = wcrnn_cell.WCRNNCell._step_constants
    monkeypatch.setattr(wcrnn_cell.WCRNNCell, "_step_constants",
                        lambda self, dtype: calls.append(dtype) or original(self, dtype))
    cell = kr.layers.WCRNNCell(UNITS, residual=residuals.Rotational(angle=0.3), dropout=0.2)
    rnn = keras.layers.RNN(cell)
    x = X[:, :1].repeat(length, axis=1)
    rnn(x)
    eager = len(calls)
    model = keras.Sequential([keras.Input((length, 2)), rnn])
    model.compile("sgd", "mse")
    calls.clear()
    model.train_on_batch(x, np.zeros((3, UNITS), "float32"))
    # The hook before the loop, and at most one traced step (JAX, TensorFlow
    # trace the loop's body once) and one symbolic call: never per step.
    assert eager == 1 and len(calls) <= 3, (eager, calls)
    assert getattr(cell, "_constants", None) is None


@pytest.mark.parametrize("name", ["rotational", "rotational_drawn"])
def test_a_rotation_as_a_product_changes_nothing(name, monkeypatch):
    """A rotation stepped as h @ R^T (where the backend's loop pays per op)
    against its elementwise form: the same outputs and gradients."""
    from keras_residual.layers import _wcrnn_kernels
    from tests.helpers import gradients

    def run(dense):
        monkeypatch.setattr(_wcrnn_kernels, "cell_dense_forms", lambda: dense)
        keras.utils.set_random_seed(3)
        cell = kr.layers.WCRNNCell(UNITS, coupling=0.5, residual=RESIDUALS[name](),
                                   bias_initializer="random_normal")
        rnn = keras.layers.RNN(cell, return_sequences=True)
        out = keras.ops.convert_to_numpy(rnn(X))
        assert (type(cell._step_constants("float32")).__name__ == "DenseForm") == dense
        return out, gradients(rnn, X)

    product, product_grads = run(True)
    plain, plain_grads = run(False)
    # The same rotation summed in another order: float32 rounding over 12
    # steps (eps32 6e-8 x 12 x O(1) states).
    np.testing.assert_allclose(product, plain, rtol=0, atol=1e-5)
    for a, b in zip(product_grads, plain_grads):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)
