"""PNNHTransformerBlock: pre-LN ViT block with residual, plain or PNNH connections."""

import re

import keras
import numpy as np
import pytest

import keras_residual as kr
from tests.helpers import check_layer


def _np(x):
    return keras.ops.convert_to_numpy(x)


def _tokens(shape=(2, 5, 8), seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype("float32")


def _zero(layer):
    layer.set_weights([np.zeros_like(w) for w in layer.get_weights()])


@pytest.mark.parametrize("attention_connection", ["residual", "plain", "pnnh"])
@pytest.mark.parametrize("mlp_connection", ["residual", "plain", "pnnh"])
def test_connections(mlp_connection, attention_connection):
    x = _tokens()
    block = kr.layers.PNNHTransformerBlock(
        2, 8, 16, mlp_connection=mlp_connection, attention_connection=attention_connection
    )
    assert tuple(block(x).shape) == x.shape
    uses_coder = "pnnh" in (mlp_connection, attention_connection)
    assert (block.coder is not None) == uses_coder
    # With both branches zeroed, each connection shows itself:
    # residual -> x, plain -> 0, pnnh -> c(x).
    _zero(block.attention)
    _zero(block.mlp_dense_2)

    def connect(kind, v):
        if kind == "residual":
            return v
        if kind == "plain":
            return np.zeros_like(v)
        return _np(block.coder(v))

    y = connect(attention_connection, x)
    expected = connect(mlp_connection, y)
    np.testing.assert_allclose(_np(block(x)), expected, atol=1e-5)


def test_pnnh_adds_the_coder_to_the_mlp_branch():
    x = _tokens()
    pnnh = kr.layers.PNNHTransformerBlock(2, 8, 16, mlp_connection="pnnh")
    plain = kr.layers.PNNHTransformerBlock(2, 8, 16, mlp_connection="plain")
    residual = kr.layers.PNNHTransformerBlock(2, 8, 16, mlp_connection="residual")
    pnnh(x)
    plain(x)
    residual(x)
    # Same sub-layers, same weights (the coder's come last in pnnh's list).
    shared = pnnh.get_weights()
    n = len(residual.get_weights())
    plain.set_weights(shared[:n])
    residual.set_weights(shared[:n])
    y = _np(residual(x)) - _np(plain(x))  # = the attention sub-block's output
    np.testing.assert_allclose(_np(pnnh(x)), _np(plain(x)) + _np(pnnh.coder(y)), atol=1e-5)
    learner = pnnh.count_params() - pnnh.coder.count_params()
    assert plain.count_params() == residual.count_params() == learner


def test_shared_coder_counted_once():
    coder = kr.layers.PNNHCoder(8)
    x = keras.Input((5, 8))
    y = x
    blocks = [kr.layers.PNNHTransformerBlock(2, 8, 16, coder=coder) for _ in range(3)]
    for block in blocks:
        y = block(y)
    model = keras.Model(x, y)
    per_block = blocks[0].count_params() - coder.count_params()
    assert model.count_params() == 3 * per_block + coder.count_params()


def test_relu_pre_activations_names():
    x = _tokens()
    block = kr.layers.PNNHTransformerBlock(
        2, 8, 16, attention_connection="pnnh", activation="relu"
    )
    pre = block.relu_pre_activations(x)
    assert list(pre) == ["attention_coder_relu", "mlp_relu", "mlp_coder_relu"]
    assert tuple(pre["mlp_relu"].shape) == (2, 5, 16)
    assert tuple(pre["mlp_coder_relu"].shape) == (2, 5, 4)
    residual = kr.layers.PNNHTransformerBlock(2, 8, 16, mlp_connection="residual")
    assert residual.relu_pre_activations(x) == {}


def test_layer_checks():
    def factory():
        coder = kr.layers.PNNHCoder(8, bottleneck_ratio=0.25)
        return kr.layers.PNNHTransformerBlock(
            2, 8, 16, coder=coder, attention_connection="pnnh", dropout=0.1
        )

    check_layer(factory, _tokens(), (2, 5, 8))


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"mlp_connection": "skip"}, ValueError, "mlp_connection='skip'"),
        ({"attention_connection": "dense"}, ValueError, "attention_connection='dense'"),
        ({"num_heads": 3}, ValueError, "divisible"),
        ({"bottleneck_ratio": 0}, ValueError, r"bottleneck_ratio=0\b"),
        ({"dropout": 1.0}, ValueError, "dropout=1.0"),
        ({"mlp_connection": "residual", "coder": "auto"}, ValueError, "'pnnh'"),
        ({"coder": kr.layers.PNNHCoder(4)}, ValueError, "filters=4"),
        ({"coder": kr.layers.PNNHCoder(8, strides=2)}, ValueError, "strides"),
        ({"coder": "auto"}, TypeError, "PNNHCoder"),
    ],
)
def test_invalid_arguments(kwargs, error, match):
    args = {"num_heads": 2, "hidden_dim": 8, "mlp_dim": 16, **kwargs}
    with pytest.raises(error, match=match):
        kr.layers.PNNHTransformerBlock(**args)


def test_invalid_inputs_at_build():
    with pytest.raises(ValueError, match="hidden_dim=8"):
        kr.layers.PNNHTransformerBlock(2, 8, 16)(_tokens((2, 5, 6)))
    coder = kr.layers.PNNHCoder(8)
    coder(_tokens((1, 2, 6)))  # built for 6 input channels
    with pytest.raises(ValueError, match="built for 6 input channels"):
        kr.layers.PNNHTransformerBlock(2, 8, 16, coder=coder)(_tokens())


# --- call-time inputs and argument kinds ----------------------------------------------


@pytest.fixture(scope="module")
def both_pnnh():
    """A built block with both paths through the coder and a ReLU MLP, reused by the cases."""
    keras.utils.set_random_seed(0)
    block = kr.layers.PNNHTransformerBlock(
        2, 8, 16, attention_connection="pnnh", activation="relu"
    )
    block(_tokens())
    return block


@pytest.mark.usefixtures("one_torch_thread")
@pytest.mark.parametrize("dtype", ["int32", "uint8", "bool", "float16", "float64"])
def test_integer_and_bool_tokens_are_computed_as_floats(both_pnnh, dtype):
    # Was wrong on jax and torch (the residual added integer tokens) and
    # crashed on tensorflow.
    tokens = (np.arange(2 * 5 * 8).reshape(2, 5, 8) % (2 if dtype == "bool" else 3)).astype(dtype)
    reference = tokens.astype("float32")
    y = both_pnnh(tokens)
    assert keras.backend.standardize_dtype(y.dtype) == "float32"
    np.testing.assert_allclose(_np(y), _np(both_pnnh(reference)), atol=1e-5)
    pre = both_pnnh.relu_pre_activations(tokens)
    for key, value in both_pnnh.relu_pre_activations(reference).items():
        assert keras.backend.standardize_dtype(pre[key].dtype) == "float32"
        np.testing.assert_allclose(_np(pre[key]), _np(value), atol=1e-5, err_msg=key)


def test_nan_propagates_and_empty_batch(both_pnnh):
    x = _tokens()
    x[0, 0, 0] = np.nan
    y = _np(both_pnnh(x))
    assert np.isnan(y[0]).any() and np.isfinite(y[1]).all()
    assert tuple(both_pnnh(np.zeros((0, 5, 8), "float32")).shape) == (0, 5, 8)
    with pytest.raises(ValueError, match=r"non-empty.*\(0, 5, 8\)"):
        both_pnnh.relu_pre_activations(np.zeros((0, 5, 8), "float32"))


@pytest.mark.parametrize("shape", [(2, 5, 6), (2, 8), (2, 1, 5, 8)])
def test_tokens_that_do_not_fit_the_built_block(both_pnnh, shape):
    for apply in (both_pnnh, both_pnnh.relu_pre_activations):
        with pytest.raises(ValueError, match=r"hidden_dim=8.*" + re.escape(str(shape))):
            apply(np.zeros(shape, "float32"))


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"num_heads": 2.0}, "num_heads"),
        ({"hidden_dim": "8"}, "hidden_dim"),
        ({"mlp_dim": True}, "mlp_dim"),
        ({"dropout": "0.1"}, "dropout"),
        ({"attention_dropout": True}, "attention_dropout"),
        ({"layer_norm_epsilon": [1e-6]}, "layer_norm_epsilon"),
        ({"bottleneck_ratio": "0.5"}, "bottleneck_ratio"),
    ],
)
def test_arguments_of_the_wrong_kind(kwargs, name):
    args = {"num_heads": 2, "hidden_dim": 8, "mlp_dim": 16, **kwargs}
    with pytest.raises(TypeError, match=f"`{name}`.*{name}=") as info:
        kr.layers.PNNHTransformerBlock(**args)
    assert isinstance(info.value, ValueError)


def test_numpy_scalars_are_accepted():
    block = kr.layers.PNNHTransformerBlock(
        np.int64(2),
        np.int32(8),
        np.int64(16),
        dropout=np.float32(0.25),
        attention_dropout=np.float64(0.5),
        layer_norm_epsilon=np.float32(1e-3),
        bottleneck_ratio=np.float32(0.5),
    )
    config = block.get_config()
    assert (config["num_heads"], config["hidden_dim"], config["dropout"]) == (2, 8, 0.25)
    assert type(config["mlp_dim"]) is int and type(config["attention_dropout"]) is float
