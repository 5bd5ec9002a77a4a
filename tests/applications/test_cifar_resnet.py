"""CIFAR ResNets of `kr.applications` (He et al. 2016, 6n + 2 layers)."""

import os

import keras
import numpy as np
import pytest

import keras_residual as kr
from keras_residual.applications import cifar_resnet

BLOCK_CLASSES = {
    "residual": kr.layers.ResidualConvBlock,
    "pnnh": kr.layers.PNNHConvBlock,
    "plain": kr.layers.PlainConvBlock,
}


def _np(x):
    return keras.ops.convert_to_numpy(x)


def _images(n=2, shape=(32, 32, 3), seed=0):
    return np.random.default_rng(seed).random((n,) + shape).astype("float32")


def _blocks(model):
    return [layer for layer in model.layers if isinstance(layer, tuple(BLOCK_CLASSES.values()))]


def _expected_params(n, classes=10):
    """`count_params()` of the residual CIFAR ResNet, from the paper's recipe.

    Batch normalization counts 4 numbers a channel (2 trainable, 2 moving
    statistics); convolutions have no biases; a projection (option B) where
    the channels change.
    """
    total = 3 * 3 * 3 * 16 + 4 * 16  # stem
    c_in = 16
    for c in (16, 32, 64):
        for _ in range(n):
            total += 9 * c_in * c + 9 * c * c + 2 * 4 * c  # two 3x3 convolutions, two BNs
            if c_in != c:
                total += c_in * c + 4 * c  # projection and its BN
            c_in = c
    return total + 64 * classes + classes


_MODELS = {}


def _model(connection):
    """One 3-class ResNet20 per connection for the module."""
    if connection not in _MODELS:
        prefix = {"residual": "", "pnnh": "PNNH", "plain": "Plain"}[connection]
        _MODELS[connection] = getattr(kr.applications, f"{prefix}ResNet20")(classes=3)
    return _MODELS[connection]


@pytest.mark.parametrize("connection", ["residual", "pnnh", "plain"])
def test_resnet20_builds_and_trains_one_step(connection):
    model = _model(connection)
    assert model.name == f"{connection}_resnet20"
    assert model.input_shape == (None, 32, 32, 3) and model.output_shape == (None, 3)
    blocks = _blocks(model)
    assert [b.name for b in blocks] == [f"stage{k}_block{b}" for k in (2, 3, 4) for b in (1, 2, 3)]
    assert {type(b) for b in blocks} == {BLOCK_CLASSES[connection]}
    # The same learners whatever the connection.
    assert sum(b.learner.count_params() for b in blocks) == 269_952
    model.compile(
        optimizer=keras.optimizers.SGD(0.01),
        loss="sparse_categorical_crossentropy",
        run_eagerly=keras.backend.backend() != "jax",  # see test_resnet.py
    )
    kernels = [w for w in model.trainable_weights if "kernel" in w.path]
    before = [_np(w).copy() for w in kernels]
    history = model.fit(_images(), np.array([0, 2]), batch_size=2, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert all(not np.allclose(b, _np(w)) for b, w in zip(before, kernels))


@pytest.mark.parametrize("depth", [20, 32, 44, 56, 110])
def test_parameter_counts(depth):
    n = (depth - 2) // 6
    assert cifar_resnet.DEPTHS[depth] == n
    model = getattr(kr.applications, f"ResNet{depth}")()
    assert len(_blocks(model)) == 3 * n
    total, trainable = cifar_resnet.PARAMS[depth]
    assert model.count_params() == total == _expected_params(n)
    assert sum(int(np.prod(w.shape)) for w in model.trainable_weights) == trainable
    if depth == 20:
        # The paper's option A has no projections: "0.27M" parameters.
        projections = 16 * 32 + 2 * 32 + 32 * 64 + 2 * 64
        assert trainable - projections == 269_722


def test_pnnh_coder_sharing():
    stage = _model("pnnh")
    block = kr.applications.PNNHResNet20(classes=3, coder_sharing="block")
    get = stage.get_layer
    # The stem has 16 channels: the whole first stage shares one coder.
    assert get("stage2_block1").coder is get("stage2_block2").coder is get("stage2_block3").coder
    assert get("stage2_block1").coder.name == "stage2_coder"
    for k in (3, 4):
        own, shared = get(f"stage{k}_block1").coder, get(f"stage{k}_block2").coder
        assert own is not shared and get(f"stage{k}_block3").coder is shared
        assert shared.name == f"stage{k}_coder" and own.strides == (2, 2)
    assert len({id(b.coder) for b in _blocks(block)}) == 9
    # A coder C_in -> C has C_in * C/2 + C/2 * C weights and C/2 + C biases:
    # 280, 1072, 4192 for 16, 32, 64 channels kept; 816 (16 -> 32) and 3168
    # (32 -> 64) for the first blocks of stages 3 and 4. "stage" shares the
    # kept-shape coders: 2 + 1 + 1 fewer.
    coders = {16: 280, 32: 1072, 64: 4192}
    assert block.count_params() - stage.count_params() == 2 * 280 + 1072 + 4192
    residual_head = 64 * 10 + 10
    projections = (16 * 32 + 4 * 32) + (32 * 64 + 4 * 64)  # 1x1 convolutions and BNs
    assert stage.count_params() == (
        cifar_resnet.PARAMS[20][0] - residual_head + 64 * 3 + 3
        - projections
        + coders[16] + (816 + coders[32]) + (3168 + coders[64])
    )


def test_keras_round_trip_keeps_coders_shared(tmp_path):
    model = _model("pnnh")
    x = _images()
    path = os.path.join(tmp_path, "pnnh_resnet20.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert loaded.name == "pnnh_resnet20"
    np.testing.assert_allclose(
        _np(loaded(x, training=False)), _np(model(x, training=False)), atol=1e-6
    )
    get = loaded.get_layer
    assert get("stage2_block1").coder is get("stage2_block2").coder is get("stage2_block3").coder
    assert get("stage3_block2").coder is get("stage3_block3").coder
    assert get("stage3_block1").coder is not get("stage3_block2").coder
    assert loaded.count_params() == model.count_params()


def test_weights_path_round_trip(tmp_path):
    model = _model("plain")
    path = os.path.join(tmp_path, "plain_resnet20.weights.h5")
    model.save_weights(path)
    loaded = kr.applications.PlainResNet20(classes=3, weights=path)
    x = _images()
    np.testing.assert_allclose(
        _np(loaded(x, training=False)), _np(model(x, training=False)), atol=1e-6
    )
    with pytest.raises(ValueError):  # a file of another architecture (no projections)
        kr.applications.ResNet20(classes=3, weights=path)


@pytest.mark.parametrize(
    "kwargs, expected",
    [
        ({"include_top": False}, (None, 8, 8, 64)),
        ({"include_top": False, "pooling": "avg"}, (None, 64)),
        ({"include_top": False, "pooling": "max"}, (None, 64)),
        ({"input_shape": (8, 8, 3), "include_top": False}, (None, 2, 2, 64)),
    ],
    ids=["feature_maps", "avg", "max", "smallest"],
)
def test_heads(kwargs, expected):
    assert kr.applications.ResNet20(**kwargs).output_shape == expected


def test_input_tensor():
    inputs = keras.Input((24, 24, 3))
    model = kr.applications.PNNHResNet20(input_tensor=inputs, classes=4)
    assert model.inputs[0] is inputs and model.input_shape == (None, 24, 24, 3)
    assert model.output_shape == (None, 4)


@pytest.mark.nchw_conv
def test_channels_first():
    last = kr.applications.PNNHResNet20(input_shape=(16, 16, 3), classes=4)
    keras.config.set_image_data_format("channels_first")
    try:
        first = kr.applications.PNNHResNet20(input_shape=(3, 16, 16), classes=4)
    finally:
        keras.config.set_image_data_format("channels_last")
    assert first.get_layer("stage3_block1").data_format == "channels_first"
    assert first.output_shape == (None, 4)
    first.set_weights(last.get_weights())
    x = _images(shape=(16, 16, 3))
    np.testing.assert_allclose(
        _np(first(np.transpose(x, (0, 3, 1, 2)), training=False)),
        _np(last(x, training=False)),
        atol=1e-5,
    )


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"input_shape": (7, 32, 3)}, ValueError, r"at least \(8, 8\).*input_shape=\(7, 32, 3\)"),
        ({"classes": 0}, ValueError, "classes=0"),
        ({"connection": "highway"}, ValueError, "connection='highway'"),
        ({"connection": "plain", "coder_sharing": "block"}, ValueError, "coder_sharing='block'"),
        ({"weights": "cifar10"}, ValueError, "weights='cifar10'"),
        ({"weights": os.path.join("no", "such.weights.h5")}, ValueError, "no file exists"),
        ({"pooling": "avg2"}, ValueError, "pooling='avg2'"),
    ],
)
def test_invalid_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        kr.applications.ResNet20(**kwargs)


def test_aliases_fix_the_connection():
    with pytest.raises(TypeError, match="connection"):
        kr.applications.PNNHResNet20(connection="plain")
    with pytest.raises(TypeError, match="coder_sharing"):
        kr.applications.PlainResNet110(coder_sharing="stage")
    for depth in (20, 32, 44, 56, 110):
        for prefix in ("PNNH", "Plain"):
            alias = getattr(kr.applications, f"{prefix}ResNet{depth}")
            assert alias.__name__ == f"{prefix}ResNet{depth}"
            assert alias.__module__ == cifar_resnet.__name__


@pytest.mark.usefixtures("one_torch_thread")
def test_integer_input_tensor_and_numpy_scalars():
    # An integer `input_tensor` crashed the first convolution on tensorflow
    # and torch (as it does keras.applications.ResNet50's). NumPy scalars are
    # numbers.
    model = kr.applications.PNNHResNet20(
        include_top=np.bool_(True),
        input_tensor=keras.Input((32, 32, 3), dtype="uint8"),
        input_shape=(np.int64(32), np.int32(32), np.int64(3)),
        classes=np.int64(3),
    )
    assert model.output_shape == (None, 3)
    assert model.layers[1].name == "image_to_float"
    twin = _model("pnnh")  # the same network with the default float32 input
    model.set_weights(twin.get_weights())
    images = np.random.default_rng(0).integers(0, 256, (2, 32, 32, 3)).astype("uint8")
    y = model(images, training=False)
    assert keras.backend.standardize_dtype(y.dtype) == "float32"
    np.testing.assert_allclose(
        _np(y), _np(twin(images.astype("float32"), training=False)), atol=1e-6
    )


@pytest.mark.usefixtures("one_torch_thread")
def test_uint8_batch_is_computed_as_float32_and_nan_propagates():
    # As keras.applications.ResNet50: a uint8 batch enters the float32 input.
    model = _model("pnnh")
    images = np.random.default_rng(0).integers(0, 256, (2, 32, 32, 3)).astype("uint8")
    floats = images.astype("float32")
    np.testing.assert_allclose(
        _np(model(images, training=False)), _np(model(floats, training=False)), atol=1e-6
    )
    floats[0, 0, 0, 0] = np.nan
    y = _np(model(floats, training=False))
    assert np.isnan(y[0]).all() and np.isfinite(y[1]).all()
