"""ImageNet ResNets of `kr.applications`: keras.applications parity, the three
connections, coder sharing, heads, serialization and argument checks.

Models are built at 32x32 (the smallest ImageNet ResNet input). A training
step runs eagerly on tensorflow and torch (tracing a ResNet's step costs more
than running it) and jitted on jax (whose eager mode compiles every operation
on its own, which costs more than compiling the step once).
"""

import os

import keras
import numpy as np
import pytest

import keras_residual as kr
from keras_residual.applications import resnet

SHAPE = (32, 32, 3)
# The numbers of the issue: keras.applications' ResNet50/101/152, 1000 classes.
KERAS_PARAMS = {50: 25_636_712, 101: 44_707_176, 152: 60_419_944}
BLOCK_CLASSES = {
    "residual": kr.layers.ResidualConvBlock,
    "pnnh": kr.layers.PNNHConvBlock,
    "plain": kr.layers.PlainConvBlock,
}


def _np(x):
    return keras.ops.convert_to_numpy(x)


def _images(n=2, shape=SHAPE, seed=0):
    return np.random.default_rng(seed).random((n,) + shape).astype("float32")


def _blocks(model):
    return [layer for layer in model.layers if isinstance(layer, tuple(BLOCK_CLASSES.values()))]


def _fit_one_step(model, classes):
    model.compile(
        optimizer=keras.optimizers.SGD(0.01),
        loss="sparse_categorical_crossentropy",
        run_eagerly=keras.backend.backend() != "jax",
    )
    # Kernels only: a convolution's bias followed by batch normalization has
    # no gradient in training mode.
    kernels = [w for w in model.trainable_weights if "kernel" in w.path]
    before = [_np(w).copy() for w in kernels]
    history = model.fit(_images(), np.arange(2) % classes, batch_size=2, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    changed = [not np.allclose(b, _np(w)) for b, w in zip(before, kernels)]
    assert all(changed), f"{changed.count(False)} of {len(kernels)} kernels did not change"


def _keras_pairs(ours, theirs):
    """(our layer, keras.applications layer) for every layer with weights.

    Stage k of ours is keras' `conv<k>`; a block's projection is keras'
    `_0_conv`/`_0_bn`, its learner's convolutions and normalizations
    `_1_conv`, `_1_bn`, ... Fails unless every keras layer with weights is
    matched once, i.e. the two networks have the same layers.
    """
    pairs = [(ours.get_layer(n), theirs.get_layer(n)) for n in ("conv1_conv", "conv1_bn")]
    for block in _blocks(ours):
        stage, index = block.name.split("_")  # "stage3", "block1"
        prefix = f"conv{stage[len('stage'):]}_{index}"
        assert (block.projection is not None) == (index == "block1"), block.name
        if block.projection is not None:
            pairs.append((block.projection, theirs.get_layer(f"{prefix}_0_conv")))
            pairs.append((block.projection_norm, theirs.get_layer(f"{prefix}_0_bn")))
        for i, (conv, norm) in enumerate(zip(block.learner.convs, block.learner.norms), 1):
            pairs.append((conv, theirs.get_layer(f"{prefix}_{i}_conv")))
            pairs.append((norm, theirs.get_layer(f"{prefix}_{i}_bn")))
    pairs.append((ours.get_layer("predictions"), theirs.get_layer("predictions")))
    matched = [id(theirs_layer) for _, theirs_layer in pairs]
    with_weights = [id(layer) for layer in theirs.layers if layer.weights]
    assert sorted(matched) == sorted(with_weights)
    return pairs


def test_residual_resnet50_is_keras_resnet50():
    keras_resnet50 = keras.applications.ResNet50(
        weights=None, input_shape=SHAPE, classifier_activation=None
    )
    model = kr.applications.ResNet50(input_shape=SHAPE, classifier_activation=None)
    assert model.name == "residual_resnet50"
    assert model.count_params() == keras_resnet50.count_params() == KERAS_PARAMS[50]
    assert len(model.weights) == len(keras_resnet50.weights)
    # Random batch-norm statistics and biases, so that every weight matters.
    rng = np.random.default_rng(0)
    for w in keras_resnet50.weights:
        if w.path.endswith(("gamma", "moving_variance")):
            w.assign(rng.uniform(0.5, 1.5, w.shape).astype("float32"))
        elif w.path.endswith(("beta", "moving_mean", "bias")):
            w.assign(rng.normal(0.0, 0.1, w.shape).astype("float32"))
    for ours, theirs in _keras_pairs(model, keras_resnet50):
        ours.set_weights(theirs.get_weights())  # raises unless the shapes agree
    x = 255.0 * _images()
    expected = _np(keras_resnet50(x, training=False))
    np.testing.assert_allclose(
        _np(model(x, training=False)), expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max()
    )


@pytest.mark.only_backend(
    "jax",
    reason="parameter counts do not depend on the backend and building ResNet101/152 "
    "twice is slow: checked in the jax pass only, where it is cheapest (the ResNet50 "
    "parity test has compiled the initializers of these shapes)",
)
@pytest.mark.parametrize("depth", [101, 152])
def test_deep_resnets_have_keras_parameter_counts(depth):
    ours = getattr(kr.applications, f"ResNet{depth}")(input_shape=SHAPE).count_params()
    theirs = getattr(keras.applications, f"ResNet{depth}")(weights=None, input_shape=SHAPE)
    assert ours == theirs.count_params() == KERAS_PARAMS[depth] == resnet.PARAMS[depth]


_MODELS = {}


def _model(depth, connection):
    """One 3-class model per (depth, connection) for the module: builds are slow."""
    if (depth, connection) not in _MODELS:
        prefix = {"residual": "", "pnnh": "PNNH", "plain": "Plain"}[connection]
        factory = getattr(kr.applications, f"{prefix}ResNet{depth}")
        _MODELS[depth, connection] = factory(input_shape=SHAPE, classes=3)
    return _MODELS[depth, connection]


@pytest.mark.parametrize("connection", ["residual", "pnnh", "plain"])
@pytest.mark.parametrize("depth", [18, 50])
def test_builds_and_trains_one_step(depth, connection):
    # Each connection trains once (training is the costly part: the PNNH net
    # at depth 50, for bottleneck learners and coders; the twins at depth 18;
    # test_cifar_resnet trains ResNet20 in the three), the others are built.
    model = _model(depth, connection)
    assert model.name == f"{connection}_resnet{depth}"
    assert model.output_shape == (None, 3)
    blocks = _blocks(model)
    assert {type(b) for b in blocks} == {BLOCK_CLASSES[connection]}
    assert len(blocks) == sum(resnet.DEPTHS[depth][1])
    assert blocks[0].name == "stage2_block1"
    assert blocks[-1].name == {18: "stage5_block2", 50: "stage5_block3"}[depth]
    # The same learners in the three networks: they differ in the connection alone.
    learner_params = sum(b.learner.count_params() for b in blocks)
    expected_learner = {18: 11_004_672, 50: 20_789_888}[depth]
    assert learner_params == expected_learner
    if depth == 18 and connection == "residual":
        assert model.count_params() == resnet.PARAMS[18] - 1000 * 512 - 1000 + 3 * 512 + 3
    if (depth == 50) == (connection == "pnnh"):
        _fit_one_step(model, 3)


def test_resnet34_parameter_count():
    # ResNet18's is checked above (3 classes).
    assert kr.applications.ResNet34(input_shape=SHAPE).count_params() == resnet.PARAMS[34]


def test_pnnh_coder_sharing():
    stage = _model(18, "pnnh")
    block = kr.applications.PNNHResNet18(input_shape=SHAPE, classes=3, coder_sharing="block")
    get = stage.get_layer
    # Stage 2 keeps 64 channels at stride 1: both blocks share its coder. The
    # first block of stages 3-5 changes the shape and has its own.
    assert get("stage2_block1").coder is get("stage2_block2").coder
    assert get("stage2_block1").coder.name == "stage2_coder"
    for k in (3, 4, 5):
        assert get(f"stage{k}_block1").coder is not get(f"stage{k}_block2").coder
        assert get(f"stage{k}_block2").coder.name == f"stage{k}_coder"
    coders = [b.coder for b in _blocks(block)]
    assert len({id(c) for c in coders}) == len(coders) == 8
    shared = get("stage2_block1").coder.count_params()
    assert stage.count_params() == block.count_params() - shared
    assert len(stage.weights) == len({id(w) for w in stage.weights})


def test_pnnh_resnet50_coder_sharing_and_count():
    model = _model(50, "pnnh")
    get = model.get_layer
    # A bottleneck stage's first block widens (64 -> 256 channels in stage 2).
    for k, n in zip((2, 3, 4, 5), (3, 4, 6, 3)):
        own = get(f"stage{k}_block1").coder
        shared = get(f"stage{k}_block2").coder
        assert own is not shared and shared.name == f"stage{k}_coder"
        assert all(get(f"stage{k}_block{b}").coder is shared for b in range(2, n + 1))
    # Same stem, learners and head as the residual ResNet50: the coders (four
    # shared, four own) replace the four projections.
    blocks = _blocks(model)
    coders = {id(b.coder): b.coder for b in blocks}.values()
    assert len(coders) == 8
    widths = ((64, 256), (256, 512), (512, 1024), (1024, 2048))
    projections = sum(a * b + b + 4 * b for a, b in widths)  # 1x1 conv with bias, BN
    head = 2048 * 1000 + 1000 - (2048 * 3 + 3)  # 1000 classes -> 3
    assert model.count_params() == (
        KERAS_PARAMS[50] - head - projections + sum(c.count_params() for c in coders)
    )


def test_keras_round_trip_residual_resnet18(tmp_path):
    model = _model(18, "residual")
    x = _images()
    path = os.path.join(tmp_path, "resnet18.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert loaded.name == "residual_resnet18"
    assert loaded.count_params() == model.count_params()
    np.testing.assert_allclose(
        _np(loaded(x, training=False)), _np(model(x, training=False)), atol=1e-6
    )


def test_weights_path_round_trip(tmp_path):
    model = _model(18, "pnnh")
    path = os.path.join(tmp_path, "pnnh_resnet18.weights.h5")
    model.save_weights(path)
    loaded = kr.applications.PNNHResNet18(input_shape=SHAPE, classes=3, weights=path)
    x = _images()
    np.testing.assert_allclose(
        _np(loaded(x, training=False)), _np(model(x, training=False)), atol=1e-6
    )


@pytest.mark.parametrize(
    "kwargs, expected",
    [
        ({"include_top": True}, (None, 5)),
        ({"include_top": False}, (None, 1, 1, 512)),
        ({"include_top": False, "pooling": "avg"}, (None, 512)),
        ({"include_top": False, "pooling": "max"}, (None, 512)),
        ({"include_top": False, "input_shape": None}, (None, None, None, 512)),
    ],
    ids=["top", "feature_maps", "avg", "max", "any_size"],
)
def test_heads(kwargs, expected):
    kwargs = {"input_shape": SHAPE, "classes": 5, **kwargs}
    model = kr.applications.ResNet18(connection="plain", **kwargs)
    assert model.output_shape == expected
    if expected[1] is None:  # a backbone for any image size >= 32
        assert tuple(model(_images(1, (64, 48, 3))).shape) == (1, 2, 2, 512)


def test_input_tensor():
    inputs = keras.Input((40, 40, 3))
    scaled = keras.layers.Rescaling(1.0 / 255)(inputs)
    model = kr.applications.ResNet18(input_tensor=scaled, include_top=False, pooling="avg")
    assert model.inputs[0] is inputs  # the source input of the tensor's graph
    assert model.input_shape == (None, 40, 40, 3)
    assert model.output_shape == (None, 512)
    with pytest.raises(ValueError, match="input_tensor"):
        kr.applications.ResNet18(input_tensor=inputs, input_shape=(64, 64, 3))


def test_block_arguments_reach_the_config():
    block = kr.layers.ResidualConvBlock(
        4, block_type="bottleneck", strides=2, use_bias=True, stride_in_first_conv=True
    )
    block.build((None, 8, 8, 8))
    assert block.compute_output_shape((None, 8, 8, 8)) == (None, 4, 4, 16)
    assert [c.strides for c in block.learner.convs] == [(2, 2), (1, 1), (1, 1)]
    assert all(c.use_bias for c in block.learner.convs) and block.projection.use_bias
    config = block.get_config()
    assert config["use_bias"] is True and config["stride_in_first_conv"] is True
    clone = kr.layers.ResidualConvBlock.from_config(config)
    clone.build((None, 8, 8, 8))
    assert [c.strides for c in clone.learner.convs] == [(2, 2), (1, 1), (1, 1)]
    default = kr.layers.PlainConvBlock(4, block_type="bottleneck", strides=2)
    default.build((None, 8, 8, 8))
    assert [c.strides for c in default.learner.convs] == [(1, 1), (2, 2), (1, 1)]
    assert not any(c.use_bias for c in default.learner.convs)
    with pytest.raises(ValueError, match="use_bias='yes'"):
        kr.layers.PNNHConvBlock(4, use_bias="yes")
    with pytest.raises(ValueError, match="stride_in_first_conv=1"):
        kr.layers.PlainConvBlock(4, stride_in_first_conv=1)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"connection": "dense"}, ValueError, "connection='dense'"),
        ({"coder_sharing": "layer"}, ValueError, "coder_sharing='layer'"),
        (
            {"coder_sharing": "block"},
            ValueError,
            "coder_sharing='block' with connection='residual'",
        ),
        (
            {"connection": "plain", "coder_sharing": "block"},
            ValueError,
            "coder_sharing='block' with connection='plain'",
        ),
        ({"input_shape": (31, 64, 3)}, ValueError, r"input_shape=\(31, 64, 3\)"),
        ({"input_shape": (64, 64)}, ValueError, r"input_shape=\(64, 64\)"),
        ({"classes": 0}, ValueError, "classes=0"),
        ({"classes": 2.5}, ValueError, "classes=2.5"),
        ({"pooling": "sum"}, ValueError, "pooling='sum'"),
        ({"include_top": "yes"}, ValueError, "include_top='yes'"),
        ({"weights": "imagenet"}, ValueError, "weights='imagenet'"),
        ({"weights": "missing/resnet.weights.h5"}, ValueError, "no file exists"),
        ({"weights": 3}, TypeError, "weights=3"),
        ({"name": ""}, ValueError, "name=''"),
        ({"classifier_activation": "no_such"}, ValueError, "classifier_activation='no_such'"),
    ],
)
def test_invalid_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        kr.applications.ResNet18(**{"input_shape": SHAPE, **kwargs})


def test_default_coder_sharing_is_accepted_with_any_connection():
    model = kr.applications.ResNet18(input_shape=SHAPE, connection="plain", coder_sharing="stage")
    assert model.name == "plain_resnet18"


def test_aliases_fix_the_connection():
    with pytest.raises(TypeError, match="connection"):
        kr.applications.PNNHResNet50(connection="residual")
    with pytest.raises(TypeError, match="connection"):
        kr.applications.PlainResNet101(connection="pnnh")
    with pytest.raises(TypeError, match="coder_sharing"):
        kr.applications.PlainResNet18(coder_sharing="block")
    for depth in (18, 34, 50, 101, 152):
        for prefix in ("PNNH", "Plain"):
            alias = getattr(kr.applications, f"{prefix}ResNet{depth}")
            assert alias.__name__ == f"{prefix}ResNet{depth}"
            assert f"ResNet{depth}" in alias.__doc__
    with pytest.raises(ValueError, match="weights='imagenet'"):
        kr.applications.PNNHResNet152(weights="imagenet")


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"include_top": 1}, "include_top"),  # booleans are True/False only, as in the ViTs
        ({"include_top": 0}, "include_top"),
        ({"classes": "3"}, "classes"),
        ({"classes": True}, "classes"),
        ({"classes": 3.0}, "classes"),
        ({"input_shape": (32.5, 32, 3)}, "input_shape"),  # was truncated to 32
        ({"input_shape": ("32", 32, 3)}, "input_shape"),
        ({"input_shape": (32, 32, True)}, "input_shape"),
        ({"input_shape": "32x32x3"}, "input_shape"),
        ({"name": 3}, "name"),
        ({"weights": 3}, "weights"),
    ],
)
def test_arguments_of_the_wrong_kind(kwargs, name):
    with pytest.raises(TypeError, match=f"`{name}`.*{name}=") as info:
        kr.applications.ResNet18(**{"input_shape": SHAPE, **kwargs})
    assert isinstance(info.value, ValueError)  # either `except` catches it


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"pooling": 1}, "pooling=1"),
        ({"connection": 0}, "connection=0"),
        ({"coder_sharing": None}, "coder_sharing=None"),
        ({"input_shape": (32, 32, 0)}, r"input_shape=\(32, 32, 0\)"),
    ],
)
def test_arguments_of_the_wrong_value(kwargs, match):
    with pytest.raises(ValueError, match=match):
        kr.applications.ResNet18(**{"input_shape": SHAPE, **kwargs})
