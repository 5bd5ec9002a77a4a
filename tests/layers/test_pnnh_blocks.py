"""PNNHConvBlock and its twins PlainConvBlock and ResidualConvBlock."""

import os
import tempfile

import keras
import numpy as np
import pytest

import keras_residual as kr
from tests.helpers import assert_backends_agree
from tests.helpers import spans_backends
from tests.helpers import check_layer

BLOCKS = (kr.layers.PNNHConvBlock, kr.layers.ResidualConvBlock, kr.layers.PlainConvBlock)


def _np(x):
    return keras.ops.convert_to_numpy(x)


def _images(shape, seed=0):
    return np.random.default_rng(seed).random(shape).astype("float32")


@pytest.mark.parametrize("cls", BLOCKS, ids=lambda c: c.__name__)
@pytest.mark.parametrize(
    "filters, kwargs, in_channels, expected",
    [
        (4, {}, 4, (2, 8, 8, 4)),
        (6, {"strides": 2}, 4, (2, 4, 4, 6)),
        (2, {"block_type": "bottleneck", "expansion": 3, "strides": 2}, 4, (2, 4, 4, 6)),
    ],
    ids=["same", "stride2_widen", "bottleneck"],
)
def test_output_shapes(cls, filters, kwargs, in_channels, expected):
    block = cls(filters, **kwargs)
    y = block(_images((2, 8, 8, in_channels)))
    assert tuple(y.shape) == expected
    assert block.output_filters == expected[-1]
    assert block.compute_output_shape((None, 8, 8, in_channels)) == (None,) + expected[1:]


@pytest.mark.parametrize(
    "block_type, strides, filters",
    [("basic", 1, 4), ("basic", 2, 2), ("bottleneck", 1, 2), ("bottleneck", 2, 2)],
)
def test_blocks_compute_relu_of_learner_plus_connection(block_type, strides, filters):
    # Input of 4 channels; bottleneck outputs 2 * filters. Identity shortcut
    # where the shape is kept, projection otherwise.
    x = _images((2, 8, 8, 4))
    kwargs = dict(block_type=block_type, strides=strides, expansion=2)
    pnnh, residual, plain = (cls(filters, **kwargs) for cls in BLOCKS)
    for block in (pnnh, residual, plain):
        block(x)
    learner = {b: _np(b.learner(x, training=False)) for b in (pnnh, residual, plain)}
    np.testing.assert_allclose(
        _np(pnnh(x)), np.maximum(learner[pnnh] + _np(pnnh.coder(x)), 0), atol=1e-5
    )
    np.testing.assert_allclose(_np(plain(x)), np.maximum(learner[plain], 0), atol=1e-5)
    if strides == 1 and residual.output_filters == 4:
        assert residual.projection is None
        shortcut = x
    else:
        assert residual.projection is not None
        shortcut = _np(residual.projection_norm(residual.projection(x), training=False))
    np.testing.assert_allclose(
        _np(residual(x)), np.maximum(learner[residual] + shortcut, 0), atol=1e-5
    )


@pytest.mark.nchw_conv
@pytest.mark.parametrize("cls", BLOCKS, ids=lambda c: c.__name__)
def test_channels_first_matches_channels_last(cls):
    x = _images((2, 8, 8, 3))
    last = cls(6, strides=2, data_format="channels_last")
    first = cls(6, strides=2, data_format="channels_first")
    y_last = last(x)
    first(np.transpose(x, (0, 3, 1, 2)))
    first.set_weights(last.get_weights())
    y_first = first(np.transpose(x, (0, 3, 1, 2)))
    assert tuple(y_first.shape) == (2, 6, 4, 4)
    np.testing.assert_allclose(np.transpose(_np(y_first), (0, 2, 3, 1)), _np(y_last), atol=1e-5)


@pytest.mark.parametrize(
    "filters, kwargs",
    [(8, {}), (8, {"strides": 2}), (4, {"block_type": "bottleneck", "strides": 2})],
)
def test_twins_differ_only_in_the_connection(filters, kwargs):
    x = _images((1, 8, 8, 8))
    blocks = [cls(filters, **kwargs) for cls in BLOCKS]
    for block in blocks:
        block(x)
    pnnh, residual, plain = blocks
    shapes = [[tuple(w.shape) for w in b.learner.weights] for b in blocks]
    assert shapes[0] == shapes[1] == shapes[2]
    counts = {b.learner.count_params() for b in blocks}
    assert len(counts) == 1
    learner = counts.pop()
    assert plain.count_params() == learner
    assert pnnh.count_params() == learner + pnnh.coder.count_params()
    projection = 0 if residual.projection is None else (
        residual.projection.count_params() + residual.projection_norm.count_params()
    )
    assert residual.count_params() == learner + projection
    assert (projection == 0) == (kwargs == {})


def _shared_coder_model(coder):
    inputs = keras.Input((8, 8, 8))
    y = inputs
    for _ in range(3):
        y = kr.layers.PNNHConvBlock(8, coder=coder)(y)
    y = kr.layers.PNNHConvBlock(12, strides=2)(y)  # own coder: shapes change
    y = keras.layers.GlobalAveragePooling2D()(y)
    return keras.Model(inputs, keras.layers.Dense(2)(y))


def test_shared_coder_builds_once_counts_once_and_survives_keras_round_trip():
    # What users do: pretrain the stage's coder, share it, train, save, load.
    coder = kr.layers.PNNHCoder(8)
    coder.pretrain(steps=3, batch_size=8)
    model = _shared_coder_model(coder)
    blocks = [l for l in model.layers if isinstance(l, kr.layers.PNNHConvBlock)]
    assert all(b.coder is coder for b in blocks[:3]) and blocks[3].coder is not coder
    expected = (
        sum(b.learner.count_params() for b in blocks)
        + coder.count_params()
        + blocks[3].coder.count_params()
        + model.layers[-1].count_params()
    )
    assert model.count_params() == expected
    assert len(coder.weights) == 4
    for weights in (model.weights, model.trainable_weights):
        assert len(weights) == len({id(w) for w in weights})

    x = _images((4, 8, 8, 8))
    model.compile(optimizer="sgd", loss="mse")
    before = [_np(w).copy() for w in coder.weights]
    model.fit(x, np.ones((4, 2), "float32"), epochs=1, verbose=0)
    # Training updates the one coder the three blocks share.
    assert any(not np.allclose(b, _np(w)) for b, w in zip(before, coder.weights))

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "pnnh.keras")
        model.save(path)
        loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(_np(loaded(x)), _np(model(x)), atol=1e-5)
    blocks = [l for l in loaded.layers if isinstance(l, kr.layers.PNNHConvBlock)]
    assert blocks[0].coder is blocks[1].coder is blocks[2].coder
    assert blocks[3].coder is not blocks[0].coder
    assert loaded.count_params() == model.count_params()
    # Outside `save`, a config round trip gives each block its own coder.
    clone = keras.Model.from_config(model.get_config())
    cloned = [l for l in clone.layers if isinstance(l, kr.layers.PNNHConvBlock)]
    assert cloned[0].coder is not cloned[1].coder


@pytest.mark.parametrize(
    "factory, shape, expected",
    [
        (lambda: kr.layers.PNNHConvBlock(6, strides=2), (2, 6, 6, 4), (2, 3, 3, 6)),
        (lambda: kr.layers.ResidualConvBlock(6, strides=2), (2, 6, 6, 4), (2, 3, 3, 6)),
        (
            lambda: kr.layers.PlainConvBlock(2, block_type="bottleneck", expansion=2),
            (2, 6, 6, 4),
            (2, 6, 6, 4),
        ),
    ],
    ids=["pnnh", "residual", "plain_bottleneck"],
)
def test_layer_checks(factory, shape, expected):
    check_layer(factory, _images(shape), expected)


@pytest.mark.parametrize("cls", BLOCKS, ids=lambda c: c.__name__)
@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"filters": 0}, "filters=0"),
        ({"filters": 4, "block_type": "wide"}, "block_type='wide'"),
        ({"filters": 4, "strides": (2, 0)}, r"strides=\(2, 0\)"),
        ({"filters": 4, "expansion": 0}, "expansion=0"),
        ({"filters": 4, "data_format": "NCHW"}, "data_format='NCHW'"),
        ({"filters": 4, "batch_norm_momentum": 1.5}, "batch_norm_momentum=1.5"),
    ],
)
def test_invalid_arguments(cls, kwargs, match):
    with pytest.raises(ValueError, match=match):
        cls(**kwargs)


@pytest.mark.parametrize("ratio", [0.0, -0.5, 1.01, float("nan")])
def test_invalid_bottleneck_ratio(ratio):
    with pytest.raises(ValueError, match=r"bottleneck_ratio.*\(0, 1\]"):
        kr.layers.PNNHConvBlock(4, bottleneck_ratio=ratio)


def test_coder_that_does_not_fit_the_block():
    with pytest.raises(TypeError, match="PNNHCoder"):
        kr.layers.PNNHConvBlock(4, coder=keras.layers.Dense(4))
    with pytest.raises(ValueError, match="filters=4"):
        kr.layers.PNNHConvBlock(8, coder=kr.layers.PNNHCoder(4))
    # A bottleneck block outputs filters * expansion channels.
    with pytest.raises(ValueError, match="16 channels.*filters=4"):
        kr.layers.PNNHConvBlock(4, block_type="bottleneck", coder=kr.layers.PNNHCoder(4))
    with pytest.raises(ValueError, match="strides"):
        kr.layers.PNNHConvBlock(4, strides=2, coder=kr.layers.PNNHCoder(4))
    with pytest.raises(ValueError, match="data_format"):
        kr.layers.PNNHConvBlock(
            4,
            data_format="channels_first",
            coder=kr.layers.PNNHCoder(4, data_format="channels_last"),
        )
    # Input width is known at build: a shared coder built for 4 channels
    # cannot serve a block fed 6.
    coder = kr.layers.PNNHCoder(4)
    kr.layers.PNNHConvBlock(4, coder=coder)(_images((1, 4, 4, 4)))
    with pytest.raises(ValueError, match="built for 4 input channels.*receives 6"):
        kr.layers.PNNHConvBlock(4, coder=coder)(_images((1, 4, 4, 6)))
    with pytest.raises(ValueError, match="rank 4"):
        kr.layers.PlainConvBlock(4)(np.zeros((1, 4, 4), "float32"))


@pytest.mark.nchw_conv
@spans_backends
def test_backends_agree():
    snippet = """
    import keras
    import keras_residual as kr

    def make():
        keras.utils.set_random_seed(0)
        coder = kr.layers.PNNHCoder(6)
        x = keras.Input((6, 6, 4))
        y = kr.layers.PNNHConvBlock(6, strides=2)(x)
        y = kr.layers.PNNHConvBlock(6, coder=coder)(y)
        y = kr.layers.PNNHConvBlock(6, coder=coder)(y)
        tokens = keras.layers.Reshape((9, 6))(y)
        tokens = kr.layers.PNNHTransformerBlock(2, 6, 8, attention_connection="pnnh")(tokens)
        return {
            "pnnh": keras.Model(x, tokens),
            "residual": kr.layers.ResidualConvBlock(2, block_type="bottleneck", strides=2),
            "plain": kr.layers.PlainConvBlock(6, strides=2, data_format="channels_first"),
        }
    """
    assert_backends_agree(snippet, _images((2, 6, 6, 4)), atol=1e-4)


# --- call-time inputs and argument kinds ----------------------------------------------


@pytest.fixture(scope="module")
def built_blocks():
    """One built block of each class (4 -> 6 channels, stride 2), reused by the cases.

    The shapes of `test_output_shapes[stride2_widen]`, whose operations jax has compiled.
    """
    keras.utils.set_random_seed(0)
    blocks = {cls.__name__: cls(6, strides=2) for cls in BLOCKS}
    for block in blocks.values():
        block(_images((2, 8, 8, 4)))
    return blocks


@pytest.mark.usefixtures("one_torch_thread")
@pytest.mark.parametrize("dtype", ["int32", "bool", "float64"])  # uint8: test_cifar_resnet
@pytest.mark.parametrize("name", [cls.__name__ for cls in BLOCKS])
def test_integer_and_bool_images_are_computed_as_floats(built_blocks, name, dtype):
    # As keras.layers.Conv2D on jax (and Dense everywhere): in the compute dtype.
    block = built_blocks[name]
    x = (np.arange(2 * 8 * 8 * 4).reshape(2, 8, 8, 4) % (2 if dtype == "bool" else 3)).astype(dtype)
    reference = x.astype("float32")
    y = block(x, training=False)
    assert keras.backend.standardize_dtype(y.dtype) == "float32"
    np.testing.assert_allclose(_np(y), _np(block(reference, training=False)), atol=1e-6)
    pre = block.relu_pre_activations(x)
    for key, value in block.relu_pre_activations(reference).items():
        assert keras.backend.standardize_dtype(pre[key].dtype) == "float32"
        np.testing.assert_allclose(_np(pre[key]), _np(value), atol=1e-6, err_msg=key)


@pytest.mark.parametrize("name", [cls.__name__ for cls in BLOCKS])
def test_nan_propagates_and_an_empty_batch_is_accepted(built_blocks, name):
    block = built_blocks[name]
    x = _images((2, 8, 8, 4))
    x[0, 0, 0, 0] = np.nan
    y = _np(block(x, training=False))
    assert np.isnan(y[0]).any() and np.isfinite(y[1]).all()
    # As Keras layers: an empty batch gives an empty output (tf's convolution
    # returned its input unchanged), and leaves batch statistics alone (an
    # empty batch's mean is NaN).
    stats = [_np(w).copy() for w in block.non_trainable_weights]
    for training in (False, True):
        empty = block(np.zeros((0, 8, 8, 4), "float32"), training=training)
        assert tuple(empty.shape) == (0, 4, 4, 6)
    for before, w in zip(stats, block.non_trainable_weights):
        np.testing.assert_array_equal(_np(w), before)
    with pytest.raises(ValueError, match=r"non-empty.*\(0, 8, 8, 4\)"):
        block.relu_pre_activations(np.zeros((0, 8, 8, 4), "float32"))


@pytest.mark.parametrize("shape", [(2, 8, 8, 6), (2, 8, 8), (2, 8, 8, 4, 4)])
def test_inputs_that_do_not_fit_a_built_block(built_blocks, shape):
    for block in built_blocks.values():
        for apply in (block, block.relu_pre_activations):
            with pytest.raises(ValueError, match=r"\(2, 8, 8"):
                apply(np.zeros(shape, "float32"))


@pytest.mark.parametrize("cls", BLOCKS, ids=lambda c: c.__name__)
@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"filters": 4.0}, "filters"),
        ({"filters": "4"}, "filters"),
        ({"filters": True}, "filters"),
        ({"strides": 1.5}, "strides"),
        ({"strides": [2, 2.0]}, "strides"),
        ({"expansion": True}, "expansion"),
        ({"block_type": 1}, "block_type"),
        ({"batch_norm_momentum": "0.9"}, "batch_norm_momentum"),
        ({"batch_norm_epsilon": True}, "batch_norm_epsilon"),
        ({"use_bias": 1}, "use_bias"),
    ],
)
def test_arguments_of_the_wrong_kind(cls, kwargs, name):
    with pytest.raises(ValueError, match=f"`{name}`.*{name}="):
        cls(**{"filters": 4, **kwargs})
    if name != "block_type":  # a wrong kind, not a wrong value: a TypeError too
        with pytest.raises(TypeError):
            cls(**{"filters": 4, **kwargs})


@pytest.mark.parametrize("ratio", ["0.5", True, [0.5]])
def test_bottleneck_ratio_of_the_wrong_kind(ratio):
    with pytest.raises(TypeError, match="bottleneck_ratio"):
        kr.layers.PNNHConvBlock(4, bottleneck_ratio=ratio)


@pytest.mark.parametrize("cls", BLOCKS, ids=lambda c: c.__name__)
def test_numpy_scalars_are_accepted(cls):
    kwargs = dict(
        strides=np.int64(2),
        expansion=np.int32(2),
        batch_norm_momentum=np.float32(0.5),
        batch_norm_epsilon=np.float64(1e-3),
        use_bias=np.bool_(True),
    )
    if cls is kr.layers.PNNHConvBlock:
        kwargs["bottleneck_ratio"] = np.float32(0.25)
    config = cls(np.int64(4), **kwargs).get_config()
    assert type(config["filters"]) is int and config["strides"] == (2, 2)
    assert type(config["batch_norm_momentum"]) is float and config["use_bias"] is True
