"""PNNHCoder: c(x) = D(relu(E(x))), shapes, pretraining and argument checks."""

import keras
import numpy as np
import pytest

import keras_residual as kr
from tests.helpers import check_layer


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
        ((2, 6, 8, 8), {"strides": 2, "data_format": "channels_first"}, (2, 12, 4, 4)),
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
    # It now carries the positive mean of its input, as DESIGN section 4 says.
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
