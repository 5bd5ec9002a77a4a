"""The shared helpers must be able to fail: each check is shown catching a
wrong layer."""

import keras
import numpy as np
import pytest

from tests.helpers import assert_backends_agree
from tests.helpers import check_layer
from tests.helpers import spans_backends


@keras.saving.register_keras_serializable(package="keras_residual_tests")
class ScaleLayer(keras.layers.Layer):
    """A correct layer: y = scale * x @ w."""

    def __init__(self, units, scale=1.0, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.scale = scale

    def build(self, input_shape):
        self.w = self.add_weight(shape=(input_shape[-1], self.units))

    def call(self, x):
        return self.scale * keras.ops.matmul(x, self.w)

    def get_config(self):
        return {**super().get_config(), "units": self.units, "scale": self.scale}


@keras.saving.register_keras_serializable(package="keras_residual_tests")
class ForgetfulLayer(ScaleLayer):
    """A wrong layer: get_config forgets `scale`."""

    def get_config(self):
        config = super().get_config()
        del config["scale"]
        return config


class UnregisteredLayer(ScaleLayer):
    """A wrong layer: not registered, so a `.keras` file cannot load it."""


@keras.saving.register_keras_serializable(package="keras_residual_tests")
class NoisyLayer(ScaleLayer):
    """A wrong layer: its output in inference changes from call to call."""

    def __init__(self, units, scale=1.0, **kwargs):
        super().__init__(units, scale=scale, **kwargs)
        self.seed_generator = keras.random.SeedGenerator(1)

    def call(self, x):
        noise = keras.random.normal(keras.ops.shape(x)[:1] + (self.units,), seed=self.seed_generator)
        return super().call(x) + noise


X = np.random.default_rng(0).normal(size=(4, 3)).astype("float32")


def test_check_layer_accepts_a_correct_layer():
    outputs = check_layer(lambda: ScaleLayer(2, scale=2.0), X, (4, 2))
    assert outputs[0].shape == (4, 2)


def test_check_layer_catches_wrong_shape():
    with pytest.raises(AssertionError, match="output shape"):
        check_layer(lambda: ScaleLayer(2), X, (4, 3))


def test_check_layer_catches_incomplete_config():
    with pytest.raises(AssertionError, match="round trip"):
        check_layer(lambda: ForgetfulLayer(2, scale=3.0), X, (4, 2))


def test_check_layer_catches_unserializable_layer():
    with pytest.raises(Exception):
        check_layer(lambda: UnregisteredLayer(2), X, (4, 2), mixed_precision=False)


def test_check_layer_catches_changed_outputs():
    with pytest.raises(AssertionError, match="round trip changed the outputs"):
        check_layer(lambda: NoisyLayer(2), X, (4, 2), mixed_precision=False)


GOOD = """
def make():
    return keras.Sequential([keras.layers.Dense(5, activation="tanh"), keras.layers.Dense(2)])
"""

# A skew of 1e-3 under torch: 100 x assert_backends_agree's float32 atol 1e-5, caught on any CPU.
BAD = """
class Skewed(keras.layers.Layer):
    def call(self, x):
        return x + (1e-3 if keras.backend.backend() == "torch" else 0.0)

def make():
    return keras.Sequential([keras.layers.Dense(3), Skewed()])
"""


@spans_backends
def test_backends_agree_on_a_dense_model():
    results = assert_backends_agree(GOOD, X)
    assert set(results) == {"tensorflow", "jax", "torch"}
    assert results["jax"]["output/0"].shape == (4, 2)


@spans_backends
def test_backends_agree_catches_a_deliberate_difference():
    with pytest.raises(AssertionError, match="torch differs from tensorflow"):
        assert_backends_agree(BAD, X)


@spans_backends
def test_backends_agree_through_a_keras_file():
    results = assert_backends_agree(GOOD, X, transfer="keras_file")
    assert results["torch"]["output/0"].shape == (4, 2)


UNREGISTERED = """
class Unregistered(keras.layers.Layer):
    def call(self, x):
        return 2.0 * x

def make():
    return keras.Sequential([keras.Input((3,)), keras.layers.Dense(3), Unregistered()])
"""


@spans_backends
def test_keras_file_transfer_catches_a_model_that_does_not_load():
    with pytest.raises(AssertionError, match="snippet failed under jax"):
        assert_backends_agree(UNREGISTERED, X, transfer="keras_file")
