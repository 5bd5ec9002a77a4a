"""Argument and input checks: one rule per kind of argument, for the whole library.

Every check takes the argument's name and value, returns the value in its
canonical Python form, and otherwise raises an error whose message names the
argument, repeats the value received and says what is allowed:

- a value of the right kind but out of range raises `ValueError`;
- a value of the wrong kind (a string or a list where a number belongs, a
  float where an integer belongs, a bool where a number belongs) raises
  `ArgumentTypeError`, which is both a `TypeError` and a `ValueError` (as
  NumPy's `AxisError` is both an `IndexError` and a `ValueError`), so either
  `except` clause catches it.

The rules:

- **Real numbers** are Python and NumPy reals (`0.1`, `np.float32(0.1)`,
  `2`, a 0-d array); bools, strings, lists and complex numbers are refused;
  NaN and infinities are refused unless a check says otherwise.
- **Integers** are Python and NumPy integers; bools and floats (even `2.0`)
  are refused.
- **Booleans** are `True`/`False` and NumPy bools; `0` and `1` are refused.
- **Rates** (dropout) are reals in [0, 1): a rate of 1 drops everything and
  leaves nothing to rescale.
- **Seeds** are `None` or integers >= 0 (what NumPy's `default_rng` and
  Keras' `SeedGenerator` both take).

Call-time input checks (`array`, `batch_array`, `floating`) refuse empty
batches and convert integer or boolean inputs to the layer's floating compute
dtype, as `keras.layers.Dense` treats them.
"""

import math
import numbers

import keras
import numpy as np
from keras import ops


class ArgumentTypeError(TypeError, ValueError):
    """An argument of the wrong kind: both a `TypeError` and a `ValueError`."""


def _describe(value):
    return f"{value!r} of type {type(value).__name__}"


def _fail_type(name, value, allowed):
    raise ArgumentTypeError(
        f"Argument `{name}` must be {allowed}; received {name}={_describe(value)}."
    )


def _fail_value(name, value, allowed):
    raise ValueError(f"Argument `{name}` must be {allowed}; received {name}={value!r}.")


# --------------------------------------------------------------------------
# Scalars


def _as_scalar(value):
    """A 0-d NumPy array or a one-element scalar tensor as its Python item."""
    if isinstance(value, np.ndarray) and value.ndim == 0:
        return value.item()
    return value


def is_real(value):
    """Whether `value` is a real number by the library's rule (no bools)."""
    value = _as_scalar(value)
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def is_integer(value):
    """Whether `value` is an integer by the library's rule (no bools)."""
    value = _as_scalar(value)
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def _bounds_text(minimum, maximum, min_open, max_open):
    if minimum is None and maximum is None:
        return ""
    if minimum is not None and maximum is not None:
        left = "(" if min_open else "["
        right = ")" if max_open else "]"
        return f" in {left}{minimum}, {maximum}{right}"
    if minimum is not None:
        return f" {'>' if min_open else '>='} {minimum}"
    return f" {'<' if max_open else '<='} {maximum}"


def _in_bounds(value, minimum, maximum, min_open, max_open):
    if minimum is not None and (value < minimum or (min_open and value == minimum)):
        return False
    if maximum is not None and (value > maximum or (max_open and value == maximum)):
        return False
    return True


def real(
    name,
    value,
    minimum=None,
    maximum=None,
    min_open=False,
    max_open=False,
    allow_none=False,
    finite=True,
):
    """A real number (NumPy scalars included) as a Python float.

    Args:
        name: the argument's name, for the message.
        value: the value to check.
        minimum, maximum: optional bounds.
        min_open, max_open: whether the bounds are excluded.
        allow_none: whether `None` passes (and is returned).
        finite: whether NaN and infinities are refused.
    """
    allowed = ("a finite real number" if finite else "a real number") + _bounds_text(
        minimum, maximum, min_open, max_open
    )
    if allow_none:
        allowed = "None or " + allowed
        if value is None:
            return None
    if not is_real(value):
        _fail_type(name, value, allowed)
    value = _as_scalar(value)
    if isinstance(value, np.floating) and value.dtype.itemsize < 8:
        # The shortest decimal that rounds to it: np.float32(0.05) -> 0.05.
        number = float(str(value))
    else:
        number = float(value)
    if math.isnan(number) or (finite and not math.isfinite(number)):
        _fail_value(name, value, allowed)
    if not _in_bounds(number, minimum, maximum, min_open, max_open):
        _fail_value(name, value, allowed)
    return number


def positive_real(name, value, allow_none=False):
    """A finite real number > 0."""
    return real(name, value, minimum=0.0, min_open=True, allow_none=allow_none)


def nonnegative_real(name, value, allow_none=False):
    """A finite real number >= 0."""
    return real(name, value, minimum=0.0, allow_none=allow_none)


def rate(name, value):
    """A dropout rate: a real number in [0, 1)."""
    return real(name, value, minimum=0.0, maximum=1.0, max_open=True)


def integer(name, value, minimum=None, maximum=None, allow_none=False, allowed=None):
    """An integer (NumPy integers included, bools and floats refused) as an int.

    `allowed` replaces the generated description of what is allowed.
    """
    text = allowed or "an integer" + _bounds_text(minimum, maximum, False, False)
    if allow_none and allowed is None:
        text = "None or " + text
    if value is None and allow_none:
        return None
    if not is_integer(value):
        _fail_type(name, value, text)
    number = int(_as_scalar(value))
    if not _in_bounds(number, minimum, maximum, False, False):
        _fail_value(name, value, text)
    return number


def positive_int(name, value, allow_none=False):
    """An integer >= 1."""
    return integer(name, value, minimum=1, allow_none=allow_none)


def seed(name, value):
    """`None` or an integer >= 0."""
    return integer(name, value, minimum=0, allow_none=True)


def boolean(name, value):
    """`True` or `False` (NumPy bools included; 0 and 1 refused)."""
    if not isinstance(value, (bool, np.bool_)):
        _fail_type(name, value, "True or False")
    return bool(value)


def one_of(name, value, allowed):
    """One of a fixed set of values: strings match strings, integers match
    integers (NumPy's included), a bool never matches 0 or 1."""
    for option in allowed:
        if option is None or isinstance(option, str):
            if value is option or (isinstance(value, str) and value == option):
                return option
        elif isinstance(option, (bool, np.bool_)):
            if isinstance(value, (bool, np.bool_)) and bool(value) == option:
                return option
        elif is_integer(option) and is_integer(value) and int(value) == option:
            return option
    _fail_value(name, value, f"one of {list(allowed)}")


def string(name, value, allow_none=False):
    """A non-empty string."""
    if value is None and allow_none:
        return None
    allowed = ("None or " if allow_none else "") + "a non-empty string"
    if not isinstance(value, str):
        _fail_type(name, value, allowed)
    if not value:
        _fail_value(name, value, allowed)
    return value


def int_pair(name, value, minimum=1):
    """An integer >= minimum or a pair of them, as a tuple of 2 ints."""
    allowed = f"an integer >= {minimum} or a tuple of 2 integers >= {minimum}"
    items = tuple(value) if isinstance(value, (list, tuple)) else (value, value)
    if len(items) != 2 or not all(is_integer(v) for v in items):
        _fail_type(name, value, allowed)
    if any(int(v) < minimum for v in items):
        _fail_value(name, value, allowed)
    return tuple(int(v) for v in items)


def real_pair(name, value, minimum=None, allow_none=False):
    """An ordered pair `(low, high)` of finite reals, as a tuple of floats."""
    allowed = "an ordered pair (low, high) of finite real numbers, low <= high" + (
        f", both >= {minimum}" if minimum is not None else ""
    )
    if value is None and allow_none:
        return None
    if isinstance(value, (str, bytes)) or not hasattr(value, "__len__") or len(value) != 2:
        _fail_type(name, value, allowed)
    if not all(is_real(v) for v in value):
        _fail_type(name, value, allowed)
    low, high = (float(_as_scalar(v)) for v in value)
    if not (math.isfinite(low) and math.isfinite(high)) or low > high:
        _fail_value(name, value, allowed)
    if minimum is not None and low < minimum:
        _fail_value(name, value, allowed)
    return (low, high)


def reals(name, value, minimum=None):
    """A non-empty 1-D sequence of finite reals (a list, tuple or array),
    as a list of floats."""
    allowed = "a non-empty sequence of finite real numbers" + (
        f" >= {minimum}" if minimum is not None else ""
    )
    if isinstance(value, (str, bytes, dict)) or is_real(value):
        _fail_type(name, value, allowed)
    try:
        values = np.asarray(value)
    except Exception:  # noqa: BLE001 (ragged or exotic input)
        _fail_type(name, value, allowed)
    if values.ndim != 1 or values.size == 0:
        _fail_value(name, value, allowed)
    if values.dtype == object or values.dtype.kind not in "iuf":
        _fail_type(name, value, allowed)
    values = values.astype("float64")
    if not np.all(np.isfinite(values)) or (minimum is not None and np.any(values < minimum)):
        _fail_value(name, value, allowed)
    return [float(v) for v in values]


def data_format(value):
    """`"channels_last"`, `"channels_first"`, or `None` for Keras' default."""
    if value is None:
        return keras.config.image_data_format()
    return one_of("data_format", value, ("channels_last", "channels_first"))


def fresh_initializer(initializer, seed=None):
    """A new instance of a Keras initializer, for one weight, reseeded when
    `seed` is given.

    Keras' unseeded initializers draw a fixed seed at construction, so one
    instance used for several weights would give them the same values; each
    weight gets its own copy instead (a seeded initializer stays
    reproducible). Other callables (a plain function) are returned as they
    are. (`clone`, from the initializer's plain config, not Keras'
    serialize: that imports TensorFlow, when installed, into a JAX or
    PyTorch process.)
    """
    initializer = keras.initializers.get(initializer)
    if not isinstance(initializer, keras.initializers.Initializer):
        return initializer
    try:
        copy = initializer.clone()
    except (TypeError, ValueError, NotImplementedError):  # a config that does not rebuild it
        return initializer
    if seed is not None and hasattr(copy, "seed"):
        copy.seed = seed
    return copy


# --------------------------------------------------------------------------
# Call-time inputs


def is_floating(dtype):
    return "float" in keras.backend.standardize_dtype(dtype)


def floating(x, dtype, name="inputs"):
    """`x` as a tensor of the floating `dtype` when it is an integer or bool
    tensor or array (floating inputs keep theirs: Keras' autocast handles
    them), as `keras.layers.Dense` computes integer inputs in its compute
    dtype. Strings and other non-numbers are a `TypeError` naming `name`."""
    if not hasattr(x, "dtype"):
        x = np.asarray(x)
    if is_floating(x.dtype):
        return x
    try:
        kind = keras.backend.standardize_dtype(x.dtype)
    except Exception:  # noqa: BLE001 (an unknown dtype: reported below)
        kind = str(x.dtype)
    if not (kind.startswith(("int", "uint")) or kind == "bool"):
        raise ArgumentTypeError(
            f"Argument `{name}` must hold numbers (floats, integers or booleans); received "
            f"dtype {kind}."
        )
    return ops.cast(x, dtype)


def array(name, value, ndim=None, min_ndim=None, nonempty=True, numeric=True):
    """A NumPy array of an array-like or tensor, checked for rank and size.

    Args:
        name: the argument's name.
        value: an array, tensor or nested list.
        ndim: the required rank (an int or a tuple of allowed ranks).
        min_ndim: the smallest rank allowed.
        nonempty: whether an array with a zero-length axis is refused.
        numeric: whether the dtype must be a number or bool.
    """
    if value is None:
        raise ValueError(f"Argument `{name}` must be an array or tensor; received None.")
    try:
        result = np.asarray(ops.convert_to_numpy(value))
    except Exception as error:  # noqa: BLE001
        raise ArgumentTypeError(
            f"Argument `{name}` must be an array or tensor; received {_describe(value)}."
        ) from error
    ranks = (ndim,) if isinstance(ndim, int) else ndim
    if ranks is not None and result.ndim not in ranks:
        wanted = " or ".join(str(r) for r in ranks)
        raise ValueError(
            f"Argument `{name}` must have rank {wanted}; received shape {result.shape} "
            f"(rank {result.ndim})."
        )
    if min_ndim is not None and result.ndim < min_ndim:
        raise ValueError(
            f"Argument `{name}` must have rank >= {min_ndim}; received shape {result.shape}."
        )
    if nonempty and (result.size == 0):
        raise ValueError(
            f"Argument `{name}` must not be empty; received shape {result.shape}."
        )
    if numeric and not (np.issubdtype(result.dtype, np.number) or result.dtype == bool):
        raise ArgumentTypeError(
            f"Argument `{name}` must be numeric; received dtype {result.dtype}."
        )
    return result


def probe_batch(name, value):
    """A batch of model inputs (the probes of the callbacks and of
    `kr.dynamics.relu_survival`): one array or tensor, or a list, tuple or
    dict of them (a model with several inputs), each numeric, of rank >= 1
    (the batch axis) and not empty; returned as NumPy arrays in the same
    structure."""
    if isinstance(value, dict):
        if not value:
            raise ValueError(f"Argument `{name}` must not be an empty dict.")
        return {key: array(f"{name}[{key!r}]", v, min_ndim=1) for key, v in value.items()}
    if isinstance(value, (list, tuple)) and value and all(hasattr(v, "shape") for v in value):
        return [array(f"{name}[{i}]", v, min_ndim=1) for i, v in enumerate(value)]
    return array(name, value, min_ndim=1)


def time_steps(name, shape):
    """The static number of time steps of `(batch, timesteps, features)`
    sequences (`None` when unknown); zero steps is refused, with a
    `ValueError` naming the argument, before any backend kernel runs."""
    steps = shape[1] if len(shape) > 1 else None
    if steps is not None and int(steps) == 0:
        raise ValueError(
            f"Argument `{name}` must have at least one time step (batch, timesteps, "
            f"features); received shape {tuple(shape)}."
        )
    return None if steps is None else int(steps)


def state_shape(name, value, expected):
    """Check that a (static) shape equals `expected`, where `None` entries
    of either match anything; raises a `ValueError` naming the argument."""
    shape = tuple(value)
    if len(shape) != len(expected) or any(
        s is not None and e is not None and int(s) != int(e) for s, e in zip(shape, expected)
    ):
        shown = tuple("batch" if e is None else e for e in expected)
        raise ValueError(
            f"Argument `{name}` must have shape {shown}; received shape {shape}."
        )


# --------------------------------------------------------------------------
# Added for the PNNH layers, the applications and the data sets.


def shape(name, value, rank=None, allow_unknown=False):
    """A shape argument (e.g. `input_shape`): a tuple or list of integers
    >= 1, of length `rank` when given, as a tuple of ints.

    `allow_unknown` lets entries be `None` (a size known only at call time).
    Floats (even `32.0`), strings and bools are refused as entries, as a
    string or a number is refused as the whole shape.
    """
    length = "" if rank is None else f"{rank} "
    allowed = f"a tuple of {length}integers >= 1" + (
        " (None for an unknown size)" if allow_unknown else ""
    )
    if not isinstance(value, (list, tuple)):
        _fail_type(name, value, allowed)
    if not all((v is None and allow_unknown) or is_integer(v) for v in value):
        _fail_type(name, value, allowed)
    if rank is not None and len(value) != rank:
        _fail_value(name, value, allowed)
    if any(v is not None and int(_as_scalar(v)) < 1 for v in value):
        _fail_value(name, value, allowed)
    return tuple(None if v is None else int(_as_scalar(v)) for v in value)


def static_dim(size):
    """A dimension of a shape as an int, or `None` where it is not known
    statically (`None`, or a symbolic dimension of a traced function)."""
    if isinstance(size, (int, np.integer)) and not isinstance(size, (bool, np.bool_)):
        return int(size)
    return None


def empty_batch(x):
    """Whether `x` is known (statically) to hold an empty batch.

    Symbolic and traced tensors with an unknown batch size are not empty.
    """
    return len(x.shape) > 0 and static_dim(x.shape[0]) == 0
