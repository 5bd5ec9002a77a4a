import keras
import numpy as np
import pytest

import keras_residual as kr
from keras_residual import residuals
from tests.helpers import float64


def built(residual, units=6):
    residual.build(units)
    return residual


def numpy_rotation(radii, angles):
    """Block-diagonal R with blocks r [[cos, -sin], [sin, cos]], built independently."""
    n = 2 * len(radii)
    R = np.zeros((n, n))
    for i, (r, phi) in enumerate(zip(radii, angles)):
        R[2 * i : 2 * i + 2, 2 * i : 2 * i + 2] = r * np.array(
            [[np.cos(phi), -np.sin(phi)], [np.sin(phi), np.cos(phi)]]
        )
    return R


LINEAR = {
    "identity": lambda: residuals.Identity(),
    "homogeneous": lambda: residuals.Homogeneous(0.8),
    "heterogeneous": lambda: residuals.Heterogeneous(radii=[0.5, 0.6, 0.7, 0.8, 0.9, 1.0]),
    "heterogeneous_drawn": lambda: residuals.Heterogeneous(radius_range=(0.3, 0.9), seed=3),
    "rotational": lambda: residuals.Rotational(radius=0.9, angle=0.4),
    "rotational_drawn": lambda: residuals.Rotational(angle_range=(0.1, 1.0), radius_range=(0.5, 1.0), seed=2),
    "dense": lambda: residuals.Dense("orthogonal", scale=0.7, seed=1),
}


@pytest.mark.parametrize("name", sorted(LINEAR))
def test_apply_equals_matrix(name):
    rho = built(LINEAR[name]())
    h = np.random.default_rng(0).normal(size=(4, 6)).astype("float32")
    R = rho.matrix()
    out = keras.ops.convert_to_numpy(rho.apply(keras.ops.convert_to_tensor(h)))
    # float32: sums of <= 6 products of O(1) terms, ~6 * eps32 = 4e-7.
    np.testing.assert_allclose(out, h @ R.T, rtol=0, atol=1e-5)


ALL = {**LINEAR,
       "nonlinear_rotational": lambda: residuals.Nonlinear(residuals.Rotational(0.9, angle=0.4)),
       "nonlinear_dense_sigmoid": lambda: residuals.Nonlinear(residuals.Dense(seed=1), "sigmoid"),
       "nonlinear_heterogeneous": lambda: residuals.Nonlinear(residuals.Heterogeneous(seed=3))}


def _finite_difference_jacobian(form, h, step=1e-6):
    """J[b, i, j] = d apply(h)_i / d h_j by central differences of `apply`."""
    n = h.shape[1]
    J = np.zeros((h.shape[0], n, n))
    for j in range(n):
        shift = np.zeros_like(h)
        shift[:, j] = step
        plus = keras.ops.convert_to_numpy(form.apply(keras.ops.convert_to_tensor(h + shift)))
        minus = keras.ops.convert_to_numpy(form.apply(keras.ops.convert_to_tensor(h - shift)))
        J[:, :, j] = (plus - minus) / (2 * step)
    return J


@pytest.mark.parametrize("name", sorted(ALL))
def test_jacobian_and_its_products_match_finite_differences_of_apply(name):
    """`jacobian`, `apply_columns` (J Q) and `apply_transpose` (g J) against
    central differences of `apply` itself, in float64: the Jacobian the
    Lyapunov code and the kernels' backward passes use is the derivative of
    the map the step applies (not of `matrix()`, from which `jacobian` is
    built)."""
    rho = built(ALL[name]())
    rng = np.random.default_rng(2)
    h = rng.normal(size=(3, 6))
    Q = rng.normal(size=(3, 6, 4))
    g = rng.normal(size=(3, 6))
    with float64():
        form = rho.form("float64")
        numeric = _finite_difference_jacobian(form, h)
        tensor = keras.ops.convert_to_tensor
        J = keras.ops.convert_to_numpy(form.jacobian(tensor(h)))
        JQ = keras.ops.convert_to_numpy(form.apply_columns(tensor(Q), tensor(h)))
        gJ = keras.ops.convert_to_numpy(form.apply_transpose(tensor(g), tensor(h)))
    # Central differences with step 1e-6 in float64: truncation ~step^2 times
    # the third derivative (O(1)) ~ 1e-12, rounding ~eps64 / step ~ 1e-10 on
    # entries of O(1): 1e-8.
    tolerance = dict(rtol=0, atol=1e-8)
    np.testing.assert_allclose(J, numeric, **tolerance)
    np.testing.assert_allclose(JQ, numeric @ Q, **tolerance)
    np.testing.assert_allclose(gJ, np.einsum("bi,bij->bj", g, numeric), **tolerance)
    if rho.linear:
        # matrix() is formed in float32: 6 terms of eps32 = 6e-8.
        np.testing.assert_allclose(numeric, np.broadcast_to(rho.matrix(), numeric.shape),
                                   rtol=0, atol=1e-6)


@pytest.mark.parametrize("name", sorted(LINEAR))
def test_analytic_exponents_are_log_moduli_of_eigenvalues(name):
    rho = built(LINEAR[name]())
    expected = np.sort(np.log(np.abs(np.linalg.eigvals(rho.matrix()))))[::-1]
    np.testing.assert_allclose(rho.analytic_exponents(), expected, atol=1e-6)


def test_matrices_against_independent_construction():
    np.testing.assert_allclose(built(residuals.Homogeneous(0.8)).matrix(), 0.8 * np.eye(6), atol=1e-7)
    radii = [0.5, 0.6, 0.7, 0.8, 0.9, 1.0]
    np.testing.assert_allclose(built(residuals.Heterogeneous(radii=radii)).matrix(), np.diag(radii), atol=1e-7)
    rot = built(residuals.Rotational(radius=0.9, angle=0.4))
    np.testing.assert_allclose(rot.matrix(), numpy_rotation([0.9] * 3, [0.4] * 3), atol=1e-6)
    # Eigenvalues of the rotation are r exp(+-i phi).
    eig = np.linalg.eigvals(rot.matrix())
    np.testing.assert_allclose(np.sort(np.angle(eig)), np.sort([0.4, -0.4] * 3), atol=1e-6)
    np.testing.assert_allclose(np.abs(eig), 0.9, atol=1e-6)
    dense = built(residuals.Dense("orthogonal", scale=0.7, seed=1))
    np.testing.assert_allclose(np.abs(np.linalg.eigvals(dense.matrix())), 0.7, atol=1e-5)


def test_drawn_parameters_follow_ranges_and_seed():
    a = built(residuals.Heterogeneous(radius_range=(0.3, 0.9), seed=3), 50)
    b = built(residuals.Heterogeneous(radius_range=(0.3, 0.9), seed=3), 50)
    c = built(residuals.Heterogeneous(radius_range=(0.3, 0.9), seed=4), 50)
    radii = np.diag(a.matrix())
    assert radii.min() >= 0.3 and radii.max() <= 0.9
    np.testing.assert_array_equal(a.matrix(), b.matrix())
    assert not np.allclose(a.matrix(), c.matrix())
    rot = built(residuals.Rotational(angle_range=(0.1, 1.0), seed=0), 40)
    angles = np.abs(np.angle(np.linalg.eigvals(rot.matrix())))
    assert angles.min() >= 0.1 - 1e-6 and angles.max() <= 1.0 + 1e-6
    assert np.ptp(angles) > 0.3  # heterogeneous frequencies


def test_nonlinear_residual():
    rho = built(residuals.Nonlinear(residuals.Homogeneous(0.9), "tanh"))
    h = np.random.default_rng(1).normal(size=(3, 6)).astype("float32")
    out = keras.ops.convert_to_numpy(rho.apply(keras.ops.convert_to_tensor(h)))
    np.testing.assert_allclose(out, 0.9 * np.tanh(h), atol=1e-6)
    J = keras.ops.convert_to_numpy(rho.jacobian(keras.ops.convert_to_tensor(h)))
    expected = 0.9 * np.eye(6)[None] * (1 - np.tanh(h) ** 2)[:, None, :]
    np.testing.assert_allclose(J, expected, atol=1e-6)
    np.testing.assert_allclose(rho.analytic_exponents(), np.log(0.9), atol=1e-6)
    with pytest.raises(TypeError, match="no constant matrix"):
        rho.matrix()


@pytest.mark.parametrize("name", sorted(LINEAR) + ["nonlinear"])
def test_config_round_trip(name):
    rho = residuals.Nonlinear(residuals.Rotational(angle=0.2)) if name == "nonlinear" else LINEAR[name]()
    config = keras.saving.serialize_keras_object(rho)
    clone = keras.saving.deserialize_keras_object(config)
    assert type(clone) is type(rho)
    assert clone.get_config() == rho.get_config()
    if name.endswith("drawn") or name == "dense":
        # Seeded draws are reproduced by the config.
        np.testing.assert_allclose(built(clone).matrix(), built(rho).matrix(), atol=1e-7)


def test_get_resolves_identifiers():
    assert residuals.get(None) is None
    assert residuals.get("none") is None
    assert isinstance(residuals.get("identity"), residuals.Identity)
    original = residuals.Homogeneous(0.5)
    copy = residuals.get(original)
    assert copy is not original and copy.radius == 0.5
    with pytest.raises(ValueError, match="Unknown residual 'rotation'"):
        residuals.get("rotation")
    with pytest.raises(TypeError, match="received 3"):
        residuals.get(3)


@pytest.mark.parametrize(
    "factory, match",
    [
        (lambda: residuals.Homogeneous(-0.1), "radius=-0.1"),
        (lambda: residuals.Homogeneous(float("inf")), "radius=inf"),
        (lambda: residuals.Heterogeneous(radii=[0.5, -1.0]), "radii"),
        (lambda: residuals.Heterogeneous(radii=None, radius_range=None), "neither"),
        (lambda: residuals.Heterogeneous(radius_range=(0.9, 0.5)), "ordered"),
        (lambda: residuals.Rotational(angle=float("nan")), "angle=nan"),
        (lambda: residuals.Rotational(angle_range=(1.0, 0.5)), "ordered"),
        (lambda: residuals.Rotational(angle=0.1, angle_range=(0.0, 1.0)), "not both"),
        (lambda: residuals.Rotational(radius_range=(0.5, "x")), "radius_range"),
        (lambda: residuals.Rotational(radius=-1), "radius=-1"),
        (lambda: residuals.Dense(scale=float("nan")), "scale=nan"),
        (lambda: residuals.Nonlinear(activation="softmax"), "activation='softmax'"),
    ],
)
def test_invalid_arguments_raise_value_error(factory, match):
    with pytest.raises(ValueError, match=match):
        factory()


def test_invalid_build_and_types():
    with pytest.raises(ValueError, match="even number of units.*units=5"):
        residuals.Rotational(angle=0.1).build(5)
    with pytest.raises(ValueError, match="3 `radii` for a layer of units=4"):
        residuals.Heterogeneous(radii=[0.1, 0.2, 0.3]).build(4)
    with pytest.raises(TypeError, match="linear residual"):
        residuals.Nonlinear(base=residuals.Nonlinear())
    with pytest.raises(ValueError, match="not built"):
        residuals.Homogeneous(0.5).matrix()


def test_public_namespace():
    assert kr.residuals.Rotational is residuals.Rotational


@pytest.mark.parametrize(
    "factory, match",
    [
        (lambda: residuals.Homogeneous([0.9, 0.8]), r"radius=\[0.9, 0.8\]"),
        (lambda: residuals.Homogeneous("0.9"), "radius='0.9'"),
        (lambda: residuals.Homogeneous(True), "radius=True"),
        (lambda: residuals.Rotational(seed=-1), "seed=-1"),
        (lambda: residuals.Rotational(seed=1.5), "seed=1.5"),
        (lambda: residuals.Rotational(angle="0.1"), "angle='0.1'"),
        (lambda: residuals.Heterogeneous(radii="0.9"), "radii='0.9'"),
        (lambda: residuals.Heterogeneous(radii=[]), "radii"),
        (lambda: residuals.Heterogeneous(seed="1"), "seed='1'"),
        (lambda: residuals.Dense(scale="1"), "scale='1'"),
        (lambda: residuals.Dense(seed=-2), "seed=-2"),
    ],
)
def test_wrong_kinds_of_arguments_are_refused_at_construction(factory, match):
    # Strings, lists and bools where a number belongs, negative seeds: refused
    # when the residual is made (not at build), naming the argument.
    with pytest.raises((ValueError, TypeError), match=match):
        factory()


def test_numpy_scalars_and_arrays_are_accepted():
    assert residuals.Homogeneous(np.float32(0.9)).radius == 0.9
    rot = residuals.Rotational(radius=np.float64(0.8), angle=np.float32(0.25), seed=np.int64(3))
    assert (rot.radius, rot.angle, rot.seed) == (0.8, 0.25, 3)
    het = residuals.Heterogeneous(radii=np.array([0.5, 0.7], "float32"))
    np.testing.assert_allclose(het.radii, [0.5, 0.7], rtol=1e-7)  # float32 input
    assert residuals.Heterogeneous(radius_range=np.array([0.2, 0.4])).radius_range == (0.2, 0.4)


@pytest.mark.only_backend("tensorflow", reason="only TensorFlow traces a state of unknown width")
def test_rotation_applies_to_a_state_of_unknown_width():
    """A TensorFlow function traced with relaxed shapes (the fused kernel's
    eager path) sees (None, None) states: the pair swap must not need the
    width (it failed inside the fused loop when it did)."""
    import tensorflow as tf

    rho = residuals.Rotational(radius=0.9, angle_range=(0.1, 1.0), seed=0)
    rho.build(6)
    form = rho.form("float32")
    h = np.random.default_rng(0).normal(size=(3, 6)).astype("float32")
    traced = tf.function(form.apply, input_signature=[tf.TensorSpec((None, None), tf.float32)])
    # Same float32 ops in another order: one multiply-add per entry, ~2 ulp (1e-6 relative).
    np.testing.assert_allclose(traced(h).numpy(), keras.ops.convert_to_numpy(form.apply(h)),
                               rtol=1e-6)
    # Against R in float64: two float32 products of magnitude <= |h| ~ 3, a few ulp each.
    np.testing.assert_allclose(traced(h).numpy(), h @ rho.matrix().T, rtol=1e-5, atol=1e-6)
