"""Derivatives of the activations the analytic Jacobians and fused kernels use.

`derivative(activation)` returns `f(a, y) -> sigma'(a)` written with
`keras.ops`, given the pre-activation `a` and `y = sigma(a)`, or `None` when
the activation has no entry here (callers then fall back to autodiff).
"""

import keras
from keras import ops


def _tanh(a, y):
    return 1.0 - ops.square(y)


def _sigmoid(a, y):
    return y * (1.0 - y)


def _relu(a, y):
    return ops.cast(ops.greater(a, 0), a.dtype)


def _linear(a, y):
    return ops.ones_like(a)


DERIVATIVES = {
    "tanh": _tanh,
    "sigmoid": _sigmoid,
    "relu": _relu,
    "linear": _linear,
}


def name_of(activation):
    """The registered name of an activation (`None` means linear)."""
    if activation is None:
        return "linear"
    if isinstance(activation, str):
        return activation
    # Keras' own functions by identity first: `keras.activations.serialize`
    # goes through the serialization machinery, which imports TensorFlow
    # when it is installed (hundreds of MB and seconds under jax or torch).
    for name in DERIVATIVES:
        if activation is getattr(keras.activations, name, None):
            return name
    serialized = keras.activations.serialize(activation)
    if isinstance(serialized, dict):
        serialized = serialized.get("config", serialized.get("class_name"))
    return serialized if isinstance(serialized, str) else None


def derivative(activation):
    """`f(a, y) -> sigma'(a)` for a known activation, else `None`."""
    return DERIVATIVES.get(name_of(activation))
