import keras
import numpy as np
import pytest

import keras_residual as kr
from keras_residual import residuals


def test_kernel_is_residual_plus_coupled_base():
    rho = residuals.Rotational(radius=0.9, angle=0.3)
    init = kr.initializers.WeaklyCoupledResidual(rho, coupling=0.05, base="orthogonal", seed=3)
    kernel = keras.ops.convert_to_numpy(init((8, 8)))
    w0 = keras.ops.convert_to_numpy(keras.initializers.Orthogonal(seed=3)((8, 8)))
    built = residuals.get(rho)
    built.build(8)
    np.testing.assert_allclose(kernel, built.matrix().T + 0.05 * w0, atol=1e-6)
    # Column convention: h_new = W^T h, and W^T - gamma W0^T is the rotation R.
    np.testing.assert_allclose(kernel.T - 0.05 * w0.T, built.matrix(), atol=1e-6)


def test_simple_rnn_with_weakly_coupled_initializer():
    init = kr.initializers.WeaklyCoupledResidual(residuals.Homogeneous(0.99), coupling=0.1, seed=0)
    layer = keras.layers.SimpleRNN(6, recurrent_initializer=init, return_sequences=True)
    x = np.random.default_rng(0).normal(size=(2, 5, 3)).astype("float32")
    layer(x)
    W = keras.ops.convert_to_numpy(layer.cell.recurrent_kernel)
    w0 = keras.ops.convert_to_numpy(keras.initializers.Orthogonal(seed=0)((6, 6)))
    np.testing.assert_allclose(W, 0.99 * np.eye(6) + 0.1 * w0, atol=1e-6)


def test_config_round_trip_and_model_save(tmp_path):
    init = kr.initializers.WeaklyCoupledResidual(residuals.Heterogeneous(radii=[0.5, 0.9]), coupling=0.2, seed=1)
    config = keras.initializers.serialize(init)
    clone = keras.initializers.deserialize(config)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(clone((2, 2))), keras.ops.convert_to_numpy(init((2, 2))), atol=1e-7
    )
    model = keras.Sequential([keras.Input((4, 1)), keras.layers.SimpleRNN(2, recurrent_initializer=init)])
    path = str(tmp_path / "elman.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    x = np.ones((1, 4, 1), "float32")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(loaded(x)), keras.ops.convert_to_numpy(model(x)), atol=1e-6)


def test_invalid_arguments():
    with pytest.raises(ValueError, match="coupling=-1"):
        kr.initializers.WeaklyCoupledResidual("identity", coupling=-1)
    with pytest.raises(TypeError, match="linear residual"):
        kr.initializers.WeaklyCoupledResidual(residuals.Nonlinear(), coupling=0.1)
    with pytest.raises(TypeError, match="linear residual"):
        kr.initializers.WeaklyCoupledResidual(None, coupling=0.1)
    with pytest.raises(ValueError, match=r"square recurrent kernels; received shape=\(3, 4\)"):
        kr.initializers.WeaklyCoupledResidual("identity", coupling=0.1)((3, 4))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"coupling": "0.1"}, "coupling='0.1'"),
        ({"coupling": [0.1]}, r"coupling=\[0.1\]"),
        ({"coupling": float("nan")}, "coupling=nan"),
        ({"seed": -1}, "seed=-1"),
    ],
)
def test_wrong_kinds_of_arguments_name_the_argument(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        kr.initializers.WeaklyCoupledResidual(residuals.Identity(), **kwargs)


def test_numpy_scalar_coupling_is_accepted():
    init = kr.initializers.WeaklyCoupledResidual(residuals.Homogeneous(0.9), coupling=np.float32(0.1))
    assert init.coupling == 0.1
    assert keras.ops.convert_to_numpy(init((4, 4))).shape == (4, 4)
