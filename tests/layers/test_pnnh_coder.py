"""PNNHCoder: c(x) = D(relu(E(x))), shapes, pretraining and argument checks."""

import keras
import numpy as np
import pytest

import keras_residual as kr
from tests.helpers import check_layer


def _np(x):
    return keras.ops.convert_to_numpy(x)


def _numpy_coder(coder, x, channels_first=False):
    we, wd, be, bd = (keras.ops.convert_to_numpy(w) for w in (
        coder.encoder_kernel, coder.decoder_kernel, coder.encoder_bias, coder.decoder_bias))
    if x.ndim == 4:
        sh, sw = coder.strides
        if channels_first:
            x = np.moveaxis(x, 1, -1)
        x = x[:, ::sh, ::sw, :]
    y = np.maximum(x @ we + be, 0.0) @ wd + bd
    if x.ndim == 4 and channels_first:
        y = np.moveaxis(y, -1, 1)
    return y


@pytest.mark.parametrize(
    "shape, kwargs, expected",
    [
        ((2, 8, 8, 6), {"strides": 1}, (2, 8, 8, 12)),
        ((2, 8, 8, 6), {"strides": 2}, (2, 4, 4, 12)),
        ((2, 7, 7, 6), {"strides": 2}, (2, 4, 4, 12)),
        pytest.param(
            (2, 6, 8, 8), {"strides": 2, "data_format": "channels_first"}, (2, 12, 4, 4),
            marks=pytest.mark.nchw_conv,
        ),
        ((2, 5, 6), {}, (2, 5, 12)),
        ((3, 6), {}, (3, 12)),
    ],
)
def test_coder_matches_numpy(shape, kwargs, expected):
    x = np.random.default_rng(0).random(shape).astype("float32")
    coder = kr.layers.PNNHCoder(12, **kwargs)
    y = keras.ops.convert_to_numpy(coder(x))
    assert y.shape == expected
    assert coder.bottleneck_filters == 6
    channels_first = kwargs.get("data_format") == "channels_first"
    np.testing.assert_allclose(y, _numpy_coder(coder, x, channels_first), atol=1e-5)
    symbolic = coder.compute_output_shape((None,) + shape[1:])
    assert symbolic == (None,) + expected[1:]


def test_bottleneck_width_rounds_and_stays_positive():
    assert kr.layers.PNNHCoder(10, bottleneck_ratio=0.25).bottleneck_filters == 2
    assert kr.layers.PNNHCoder(3, bottleneck_ratio=0.1).bottleneck_filters == 1
    assert kr.layers.PNNHCoder(8, bottleneck_ratio=1).bottleneck_filters == 8


def test_coder_layer_checks():
    x = np.random.default_rng(1).random((2, 6, 6, 4)).astype("float32")
    check_layer(lambda: kr.layers.PNNHCoder(4, strides=2), x, (2, 3, 3, 4))


def test_pretraining_lowers_reconstruction_loss():
    coder = kr.layers.PNNHCoder(8)
    history = coder.pretrain(steps=150, batch_size=128, learning_rate=1e-2, seed=0)
    assert len(history) == 150 and all(np.isfinite(history))
    first, last = np.mean(history[:10]), np.mean(history[-10:])
    # A zero-output coder scores E[relu(z)^2] = 0.5; predicting the mean 0.34.
    assert last < 0.5 * first and last < 0.34, (first, last)
    # It now carries the positive mean of its input (PNNHCoder's docstring,
    # "Pre-training").
    u = np.maximum(np.random.default_rng(2).standard_normal((4096, 8)), 0).astype("float32")
    out = keras.ops.convert_to_numpy(coder(u))
    assert abs(out.mean() - u.mean()) < 0.1
    assert np.corrcoef(out.ravel(), u.ravel())[0, 1] > 0.25
    assert coder.trainable


def test_pretrain_can_freeze_and_refuses_a_non_square_coder():
    coder = kr.layers.PNNHCoder(4)
    coder.pretrain(steps=2, batch_size=8, trainable_after=False)
    assert not coder.trainable and not coder.trainable_weights
    wide = kr.layers.PNNHCoder(4)
    wide(np.zeros((1, 6), "float32"))
    with pytest.raises(ValueError, match="input channels == filters"):
        wide.pretrain(steps=1)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"filters": 0}, "filters=0"),
        ({"filters": 4, "bottleneck_ratio": 0.0}, "bottleneck_ratio=0.0"),
        ({"filters": 4, "bottleneck_ratio": 1.5}, "bottleneck_ratio=1.5"),
        ({"filters": 4, "strides": 0}, "strides=0"),
        ({"filters": 4, "data_format": "nhwc"}, "data_format='nhwc'"),
    ],
)
def test_invalid_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        kr.layers.PNNHCoder(**kwargs)


def test_invalid_inputs_at_build():
    with pytest.raises(ValueError, match="strides"):
        kr.layers.PNNHCoder(4, strides=2)(np.zeros((1, 3, 4), "float32"))
    with pytest.raises(ValueError, match="rank"):
        kr.layers.PNNHCoder(4)(np.zeros((1, 2, 2, 2, 4), "float32"))
    with pytest.raises(ValueError, match="steps=0"):
        kr.layers.PNNHCoder(4).pretrain(steps=0)


# --- call-time inputs and argument kinds ----------------------------------------------


LAYOUTS = ["images", pytest.param("channels_first", marks=pytest.mark.nchw_conv), "tokens"]


@pytest.fixture(scope="module")
def coders():
    """Built coders (images, channels first with stride 2, tokens), reused by the cases.

    The shapes of `test_coder_matches_numpy`, whose operations jax has compiled.
    """
    keras.utils.set_random_seed(0)
    layouts = {
        "images": (kr.layers.PNNHCoder(12), (2, 8, 8, 6)),
        "channels_first": (
            kr.layers.PNNHCoder(12, strides=2, data_format="channels_first"),
            (2, 6, 8, 8),
        ),
        "tokens": (kr.layers.PNNHCoder(12), (2, 5, 6)),
    }
    for coder, shape in layouts.values():
        coder.build(shape)
    return layouts


def _counts(shape, dtype):
    # Small integers: exact in every dtype, bool included (0 and 1).
    top = 2 if dtype == "bool" else 3
    return (np.arange(np.prod(shape)).reshape(shape) % top).astype(dtype)


@pytest.mark.usefixtures("one_torch_thread")
@pytest.mark.parametrize("dtype", ["int32", "uint8", "bool", "float16", "float64"])
@pytest.mark.parametrize("layout", LAYOUTS)
def test_inputs_are_computed_in_the_compute_dtype(coders, layout, dtype):
    # As keras.layers.Dense: integer and bool inputs are computed as floats,
    # in call and in the methods that bypass Layer.__call__ as well.
    coder, shape = coders[layout]
    x = _counts(shape, dtype)
    reference = x.astype("float32")
    for method in ("call", "encode", "relu"):
        apply = {
            "call": coder,
            "encode": coder.encode,
            "relu": lambda v: coder.relu_pre_activations(v)["coder_relu"],
        }[method]
        y = apply(x)
        assert keras.backend.standardize_dtype(y.dtype) == "float32", (method, y.dtype)
        np.testing.assert_allclose(_np(y), _np(apply(reference)), atol=1e-6, err_msg=method)
    code = _counts(tuple(coder.encode(reference).shape), dtype)
    decoded = coder.decode(code)
    assert keras.backend.standardize_dtype(decoded.dtype) == "float32"
    np.testing.assert_allclose(_np(decoded), _np(coder.decode(code.astype("float32"))), atol=1e-6)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_nan_propagates_and_empty_batch_gives_an_empty_output(coders, layout):
    coder, shape = coders[layout]
    x = np.ones(shape, "float32")
    x[0] = np.nan
    y = _np(coder(x))
    assert np.isnan(y[0]).all() and np.isfinite(y[1]).all()
    # Keras layers (Dense) accept an empty batch; tf's convolution mishandles one.
    empty = coder(np.zeros((0,) + shape[1:], "float32"))
    assert tuple(empty.shape) == (0,) + coder.compute_output_shape(shape)[1:]


@pytest.mark.parametrize(
    "shape, match",
    [
        ((2, 8, 8, 5), r"6 input channels.*\(2, 8, 8, 5\)"),
        ((2, 5, 8), r"6 input channels.*\(2, 5, 8\)"),
        ((2, 2, 8, 8, 6), r"rank.*\(2, 2, 8, 8, 6\)"),
    ],
)
def test_inputs_that_do_not_fit_the_built_coder(coders, shape, match):
    coder, _ = coders["images"]
    with pytest.raises(ValueError, match=match):
        coder(np.zeros(shape, "float32"))
    strided, _ = coders["channels_first"]
    with pytest.raises(ValueError, match=r"strides.*\(2, 5, 6\)"):
        strided(np.zeros((2, 5, 6), "float32"))  # its stride needs images


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"filters": 8.0}, "filters"),
        ({"filters": "8"}, "filters"),
        ({"filters": [8]}, "filters"),
        ({"filters": True}, "filters"),
        ({"bottleneck_ratio": "0.5"}, "bottleneck_ratio"),
        ({"bottleneck_ratio": True}, "bottleneck_ratio"),
        ({"strides": 2.0}, "strides"),
        ({"strides": (2, "2")}, "strides"),
        ({"use_bias": "no"}, "use_bias"),
        ({"use_bias": 0}, "use_bias"),
    ],
)
def test_arguments_of_the_wrong_kind(kwargs, name):
    args = {"filters": 8, **kwargs}
    with pytest.raises(TypeError, match=f"`{name}`.*{name}=") as info:
        kr.layers.PNNHCoder(**args)
    assert isinstance(info.value, ValueError)  # either `except` catches it


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"steps": 2.0}, "steps"),
        ({"batch_size": "8"}, "batch_size"),
        ({"learning_rate": "0.01"}, "learning_rate"),
        ({"trainable_after": "no"}, "trainable_after"),
        ({"seed": 1.5}, "seed"),
        ({"seed": -1}, "seed"),
    ],
)
def test_pretrain_arguments(kwargs, name):
    with pytest.raises(ValueError, match=f"`{name}`.*{name}="):
        kr.layers.PNNHCoder(4).pretrain(**{"steps": 1, "batch_size": 4, **kwargs})


def test_numpy_scalars_are_accepted_and_stored_as_python_numbers():
    coder = kr.layers.PNNHCoder(
        np.int64(8), bottleneck_ratio=np.float32(0.25), strides=np.int32(2), use_bias=np.bool_(True)
    )
    config = coder.get_config()
    assert (config["filters"], config["strides"], config["use_bias"]) == (8, (2, 2), True)
    assert type(config["filters"]) is int and type(config["bottleneck_ratio"]) is float
    assert coder.bottleneck_filters == 2
    history = kr.layers.PNNHCoder(4).pretrain(
        steps=np.int64(1), batch_size=np.int32(4), learning_rate=np.float32(0.01), seed=np.int64(0)
    )
    assert len(history) == 1
