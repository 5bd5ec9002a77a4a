"""Argument checks and resolution shared by the PNNH coder and blocks.

Each check raises a `ValueError` (`TypeError` for a wrong type of object) naming
the argument, the value received and what is allowed.
"""

import math
import numbers

import keras


def positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
        raise ValueError(
            f"Argument `{name}` must be a positive integer; received {name}={value!r}."
        )
    return int(value)


def positive_float(name, value):
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Real)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ValueError(
            f"Argument `{name}` must be a positive finite float; received {name}={value!r}."
        )
    return float(value)


def rate(name, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0.0 <= value < 1.0:
        raise ValueError(f"Argument `{name}` must be a float in [0, 1); received {name}={value!r}.")
    return float(value)


def bottleneck_ratio(value):
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Real)
        or not math.isfinite(value)
        or not 0.0 < value <= 1.0
    ):
        raise ValueError(
            "Argument `bottleneck_ratio` must be a float in (0, 1]; "
            f"received bottleneck_ratio={value!r}."
        )
    return float(value)


def strides(value):
    if isinstance(value, (list, tuple)):
        items = tuple(value)
    else:
        items = (value, value)
    if len(items) != 2 or any(
        isinstance(s, bool) or not isinstance(s, numbers.Integral) or s <= 0 for s in items
    ):
        raise ValueError(
            "Argument `strides` must be a positive integer or a tuple of 2 "
            f"positive integers; received strides={value!r}."
        )
    return tuple(int(s) for s in items)


def data_format(value):
    if value is None:
        return keras.config.image_data_format()
    if value not in ("channels_last", "channels_first"):
        raise ValueError(
            "Argument `data_format` must be 'channels_last', 'channels_first' "
            f"or None; received data_format={value!r}."
        )
    return value


def one_of(name, value, allowed):
    if value not in allowed:
        raise ValueError(
            f"Argument `{name}` must be one of {list(allowed)}; received {name}={value!r}."
        )
    return value


def fresh_initializer(initializer):
    """A new instance of an initializer, for one weight.

    Keras' unseeded initializers draw a fixed seed at construction, so one
    instance used for several weights gives them the same values; each weight
    gets its own copy instead (a seeded initializer stays reproducible).
    """
    try:
        return keras.initializers.get(keras.initializers.serialize(initializer))
    except (TypeError, ValueError):
        return initializer
