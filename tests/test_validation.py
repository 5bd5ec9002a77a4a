"""The validation module's own rules (one per kind of argument)."""

import keras
import numpy as np
import pytest

from keras_residual import _validation as check


@pytest.mark.parametrize("value, expected", [
    (0.1, 0.1), (np.float32(0.05), 0.05), (np.float64(2.5), 2.5), (2, 2.0),
    (np.int64(3), 3.0), (np.array(0.25), 0.25),
])
def test_real_accepts_python_and_numpy_reals(value, expected):
    result = check.real("x", value)
    assert result == expected and type(result) is float


@pytest.mark.parametrize("value", ["0.1", [0.1], True, np.bool_(False), 1j, None, (1.0,)])
def test_real_refuses_other_kinds_with_the_name_and_value(value):
    with pytest.raises(check.ArgumentTypeError, match=r"Argument `coupling` must be .*coupling="):
        check.real("coupling", value)


def test_argument_type_error_is_both_type_and_value_error():
    for kind in (TypeError, ValueError):
        with pytest.raises(kind):
            check.real("x", "1")


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -np.inf])
def test_real_refuses_non_finite_unless_asked(value):
    with pytest.raises(ValueError, match="finite"):
        check.real("x", value)
    if not np.isnan(value):
        assert check.real("x", value, finite=False) == value
    else:
        with pytest.raises(ValueError):
            check.real("x", value, finite=False)  # NaN is never a number we take


def test_bounds_open_and_closed():
    assert check.real("x", 0.0, minimum=0.0) == 0.0
    with pytest.raises(ValueError, match=r"> 0"):
        check.positive_real("x", 0.0)
    with pytest.raises(ValueError, match=r"in \[0.0, 1.0\)"):
        check.rate("dropout", 1.0)
    assert check.rate("dropout", np.float32(0.1)) == pytest.approx(0.1)
    with pytest.raises(ValueError, match=r"received dropout=-0.1"):
        check.rate("dropout", -0.1)
    assert check.nonnegative_real("x", None, allow_none=True) is None


@pytest.mark.parametrize("value", [2.0, True, "2", np.float32(2)])
def test_integer_refuses_floats_bools_and_strings(value):
    with pytest.raises(check.ArgumentTypeError, match="units"):
        check.positive_int("units", value)


def test_integer_ranges_and_numpy_integers():
    assert check.positive_int("units", np.int32(4)) == 4
    with pytest.raises(ValueError, match="units=0"):
        check.positive_int("units", 0)
    assert check.integer("k", 3, minimum=1, maximum=3) == 3
    with pytest.raises(ValueError, match="k=4"):
        check.integer("k", 4, minimum=1, maximum=3)
    with pytest.raises(ValueError, match="only this"):
        check.integer("k", 9, maximum=3, allowed="only this")


def test_seed_is_none_or_a_nonnegative_integer():
    assert check.seed("seed", None) is None and check.seed("seed", np.int64(7)) == 7
    with pytest.raises(ValueError, match="seed=-1"):
        check.seed("seed", -1)
    with pytest.raises(TypeError, match="seed"):
        check.seed("seed", 1.5)


def test_boolean_refuses_integers():
    assert check.boolean("flag", np.bool_(True)) is True
    for value in (0, 1, "True", None):
        with pytest.raises(check.ArgumentTypeError, match="flag"):
            check.boolean("flag", value)


def test_one_of_matches_kinds_exactly():
    assert check.one_of("mode", "a", ("a", "b")) == "a"
    assert check.one_of("q", np.int64(2), (1, 2, "auto")) == 2
    for value in ("c", True, 1.0):
        with pytest.raises(ValueError, match=r"one of \['a', 1\]"):
            check.one_of("mode", value, ("a", 1) if value is not True else ("a", 1))


def test_strings_pairs_and_sequences():
    assert check.string("name", "x") == "x"
    with pytest.raises(ValueError, match="non-empty"):
        check.string("name", "")
    assert check.int_pair("strides", 2) == (2, 2) and check.int_pair("strides", [1, 3]) == (1, 3)
    with pytest.raises(TypeError, match="strides"):
        check.int_pair("strides", (1.0, 2))
    assert check.real_pair("range", (np.float32(0.5), 1)) == (0.5, 1.0)
    with pytest.raises(ValueError, match="low <= high"):
        check.real_pair("range", (1.0, 0.5))
    assert check.reals("radii", np.array([0.9, 0.8], "float32")) == pytest.approx([0.9, 0.8])
    for value in ("0.9", 0.9, [], [[0.9]], ["a"]):
        with pytest.raises(ValueError, match="radii"):
            check.reals("radii", value)


def test_shape_rule():
    assert check.shape("input_shape", [32, 32, 3], rank=3) == (32, 32, 3)
    assert check.shape("input_shape", (None, 3), allow_unknown=True) == (None, 3)
    for value in ((32.0, 32, 3), "32", (32, 32), (0, 32, 3)):
        with pytest.raises(ValueError, match="input_shape"):
            check.shape("input_shape", value, rank=3)


def test_data_format():
    assert check.data_format(None) == keras.config.image_data_format()
    with pytest.raises(ValueError, match="data_format='nhwc'"):
        check.data_format("nhwc")


def test_fresh_initializer_copies_and_reseeds():
    base = keras.initializers.GlorotUniform(seed=1)
    copy = check.fresh_initializer(base, seed=5)
    assert copy is not base and copy.seed == 5 and base.seed == 1
    a = keras.ops.convert_to_numpy(check.fresh_initializer(base)((3, 3)))
    b = keras.ops.convert_to_numpy(check.fresh_initializer(base)((3, 3)))
    np.testing.assert_array_equal(a, b)  # a seeded initializer stays reproducible
    assert check.fresh_initializer(lambda shape, dtype=None: 0) is not None


def test_floating_casts_integer_and_bool_inputs_only():
    x = check.floating(np.ones((2, 3), "int32"), "float32")
    assert keras.backend.standardize_dtype(x.dtype) == "float32"
    x = check.floating(np.ones((2,), bool), "float16")
    assert keras.backend.standardize_dtype(x.dtype) == "float16"
    y = np.ones((2,), "float64")
    assert check.floating(y, "float32") is y  # floats keep theirs (Keras autocasts)


def test_array_rule():
    assert check.array("x", [[1, 2]], ndim=2).shape == (1, 2)
    with pytest.raises(ValueError, match=r"`x` must have rank 3"):
        check.array("x", np.ones((2, 3)), ndim=3)
    with pytest.raises(ValueError, match=r"`x` must not be empty"):
        check.array("x", np.ones((0, 3)))
    with pytest.raises(TypeError, match=r"`x` must be numeric"):
        check.array("x", np.array(["a"]))
    with pytest.raises(ValueError, match="received None"):
        check.array("x", None)


def test_state_shape_and_batch_helpers():
    check.state_shape("initial_state", (2, 4), (None, 4))
    with pytest.raises(ValueError, match=r"initial_state.*\('batch', 4\).*\(2, 3\)"):
        check.state_shape("initial_state", (2, 3), (None, 4))
    assert check.static_dim(np.int64(3)) == 3 and check.static_dim(None) is None
    assert check.empty_batch(np.ones((0, 2))) and not check.empty_batch(np.ones((1, 2)))
    assert not check.empty_batch(keras.KerasTensor((None, 2)))
