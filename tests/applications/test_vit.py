"""ViT family: keras-hub parity, connections, shared coder, saving, arguments.

Models that train or run are ViT-Ti at 32x32 with 8x8 patches (17 tokens),
trained eagerly (compiling a 12-block ViT's train step takes 10-50 s on a
CPU). Larger configurations are built inside a `keras.StatelessScope` that
leaves their variables uninitialized: shapes and parameter counts without
drawing hundreds of millions of random numbers.
"""

import contextlib

import keras
import numpy as np
import pytest

import keras_residual as kr
from keras_residual.applications import vit

apps = kr.applications
IMAGE = (32, 32, 3)
SMALL = dict(input_shape=IMAGE, patch_size=8)
SIZES = {  # name -> (hidden_dim, num_layers, num_heads)
    "Tiny": (192, 12, 3),
    "Small": (384, 12, 6),
    "Base": (768, 12, 12),
    "Large": (1024, 24, 16),
}


@contextlib.contextmanager
def shapes_only():
    """Build models without initializing their variables (shapes and counts only)."""
    try:
        with keras.StatelessScope(initialize_variables=False):
            yield
    finally:
        # Drop the uninitialized variables, so that no later scope initializes them.
        keras.utils.clear_session()


def _np(x):
    return keras.ops.convert_to_numpy(x)


def _images(n=2, seed=0):
    return np.random.default_rng(seed).uniform(size=(n,) + IMAGE).astype("float32")


def _blocks(model):
    return [layer for layer in model.layers if isinstance(layer, kr.layers.PNNHTransformerBlock)]


def _coder_params(hidden_dim):
    # E: hidden -> hidden / 2 and D: hidden / 2 -> hidden, with biases.
    return hidden_dim * hidden_dim + hidden_dim // 2 + hidden_dim


# --- keras-hub parity -------------------------------------------------------------------

# keras-hub 0.32.0, measured with
# keras_hub.models.ViTBackbone(image_shape=(224, 224, 3), patch_size=16, num_layers=L,
#                              num_heads=H, hidden_dim=D, mlp_dim=4 * D).count_params()
# for the (D, L, H) of each size; ViT-B/16 is the ViTBackbone of the brief:
# ViTBackbone(image_shape=(224, 224, 3), patch_size=16, num_layers=12, num_heads=12,
#             hidden_dim=768, mlp_dim=3072).count_params() == 85_798_656.
KERAS_HUB_PARAMS = {
    "Tiny": 5_524_416,
    "Small": 21_665_664,
    "Base": 85_798_656,
    "Large": 303_301_632,
}


@pytest.mark.parametrize("size", list(SIZES))
def test_parameters_match_keras_hub_constants(size):
    hidden_dim, num_layers, num_heads = SIZES[size]
    with shapes_only():
        model = getattr(apps, f"ViT{size}16")(include_top=False, pooling=None)
        blocks = _blocks(model)
        assert model.name == f"residual_vit_{size.lower()}16"
        assert model.input_shape == (None, 224, 224, 3)
        assert model.output_shape == (None, 197, hidden_dim)
        assert len(blocks) == num_layers
        assert {(b.num_heads, b.hidden_dim, b.mlp_dim) for b in blocks} == {
            (num_heads, hidden_dim, 4 * hidden_dim)
        }
        assert model.count_params() == KERAS_HUB_PARAMS[size]


def test_vit_base16_parameters_match_keras_hub_live():
    import keras_hub  # pip install 'keras-residual[hub]' (the `all` extra installs it)
    with shapes_only():
        hub = keras_hub.models.ViTBackbone(
            image_shape=(224, 224, 3),
            patch_size=16,
            num_layers=12,
            num_heads=12,
            hidden_dim=768,
            mlp_dim=3072,
        )
        ours = apps.ViTBase16(include_top=False, pooling=None)
        assert ours.output_shape == hub.output_shape
        assert ours.count_params() == hub.count_params() == KERAS_HUB_PARAMS["Base"]


def test_outputs_match_keras_hub_with_the_same_weights():
    import keras_hub  # pip install 'keras-residual[hub]' (the `all` extra installs it)
    hub = keras_hub.models.ViTBackbone(
        image_shape=IMAGE, patch_size=8, num_layers=12, num_heads=3, hidden_dim=192, mlp_dim=768
    )
    ours = apps.ViTTiny16(include_top=False, pooling=None, **SMALL)
    hub_embedding = hub.get_layer("vit_patching_and_embedding")
    embedding = ours.get_layer("patch_embedding")
    embedding.class_token.assign(hub_embedding.class_token)
    embedding.projection.set_weights(hub_embedding.patch_embedding.get_weights())
    positions = hub_embedding.position_embedding.embeddings
    embedding.position_embedding.assign(keras.ops.expand_dims(positions, 0))
    encoder = hub.get_layer("vit_encoder")
    for hub_block, block in zip(encoder.encoder_layers, _blocks(ours)):
        block.attention_norm.set_weights(hub_block.layer_norm_1.get_weights())
        block.attention.set_weights(hub_block.mha.get_weights())
        block.mlp_norm.set_weights(hub_block.layer_norm_2.get_weights())
        block.mlp_dense_1.set_weights(hub_block.mlp.dense_1.get_weights())
        block.mlp_dense_2.set_weights(hub_block.mlp.dense_2.get_weights())
    ours.get_layer("encoder_norm").set_weights(encoder.layer_norm.get_weights())
    x = _images()
    np.testing.assert_allclose(_np(ours(x)), _np(hub(x)), atol=1e-4)


# --- sizes and connections --------------------------------------------------------------


def test_constructors_pass_their_size_and_connections(monkeypatch):
    calls = {}
    monkeypatch.setattr(vit, "_vit", lambda size, **kwargs: (size, kwargs))
    for size in SIZES:
        for prefix, connections in (
            ("", ("residual", "residual")),
            ("PNNH", ("pnnh", "residual")),
            ("Plain", ("plain", "plain")),
        ):
            name = f"{prefix}ViT{size}16"
            got, kwargs = getattr(vit, name)(**SMALL)
            calls[name] = (got, kwargs["connection"], kwargs["attention_connection"])
            assert (got, *connections) == calls[name]
            assert kwargs["input_shape"] == IMAGE and kwargs["patch_size"] == 8
    assert sorted(calls) == sorted(vit.__all__[:-2])
    assert set(calls) <= set(apps.__all__)


def test_pnnh_and_plain_large_build():
    # The other sizes' aliases are built at 224x224 (constants above, residual) and at
    # 32x32 (ViT-Ti, every connection); their wiring is checked above.
    with shapes_only():
        pnnh = apps.PNNHViTLarge16(include_top=False, pooling="avg", **SMALL)
        plain = apps.PlainViTLarge16(classes=10, **SMALL)
        assert pnnh.output_shape == (None, 1024)
        assert plain.output_shape == (None, 10)
        assert pnnh.name == "pnnh_vit_large8"
        assert plain.name == "plain_attnplain_vit_large8"
        assert len(_blocks(pnnh)) == len(_blocks(plain)) == 24
        assert len({id(b.coder) for b in _blocks(pnnh)}) == 1
        assert all(b.coder is None for b in _blocks(plain))
        # Same layers but the coder (counted once) and the classifier.
        head = 1024 * 10 + 10
        assert pnnh.count_params() == plain.count_params() - head + _coder_params(1024)


@pytest.mark.parametrize(
    "factory, kwargs",
    [
        (apps.ViTTiny16, {}),
        (apps.PNNHViTTiny16, {}),
        (apps.PlainViTTiny16, {"name": "my_plain_vit"}),
        (apps.ViTTiny16, {"attention_connection": "pnnh", "dropout": 0.1}),
    ],
    ids=["residual", "pnnh", "plain", "attention_pnnh"],
)
def test_tiny_trains_one_step(factory, kwargs):
    model = factory(classes=3, **SMALL, **kwargs)
    assert model.name == kwargs.get("name", model.name)
    # Eagerly: compiling a 12-block train step takes 10-50 s on a CPU.
    model.compile(
        optimizer=keras.optimizers.SGD(0.1),
        loss="sparse_categorical_crossentropy",
        run_eagerly=True,
    )
    before = [_np(w) for w in model.trainable_weights]
    loss = model.train_on_batch(_images(), np.array([0, 2]))
    assert np.isfinite(loss)
    unchanged = [
        w.path for b, w in zip(before, model.trainable_weights) if np.array_equal(b, _np(w))
    ]
    assert not unchanged


def test_input_tensor_sets_the_image_shape():
    with shapes_only():
        image = keras.Input((48, 32, 3))
        model = apps.ViTTiny16(
            input_tensor=image, patch_size=(16, 8), include_top=False, pooling=None
        )
        assert model.inputs[0] is image
        assert model.output_shape == (None, 1 + 3 * 4, 192)
        assert model.name == "residual_vit_tiny16x8"


# --- the shared coder -------------------------------------------------------------------


def test_one_coder_shared_by_every_block():
    with shapes_only():
        residual = apps.ViTTiny16(include_top=False, pooling=None, **SMALL)
        assert all(b.coder is None for b in _blocks(residual))
        for kwargs, name in (
            ({"connection": "pnnh"}, "pnnh_vit_tiny8"),
            ({"attention_connection": "pnnh"}, "residual_attnpnnh_vit_tiny8"),
            ({"connection": "pnnh", "attention_connection": "pnnh"}, "pnnh_attnpnnh_vit_tiny8"),
        ):
            model = apps.ViTTiny16(include_top=False, pooling=None, **SMALL, **kwargs)
            assert model.name == name
            coder = _blocks(model)[0].coder
            assert all(b.coder is coder for b in _blocks(model))
            assert isinstance(coder, kr.layers.PNNHCoder) and coder.name == "coder"
            assert coder.count_params() == _coder_params(192)
            assert model.count_params() == residual.count_params() + _coder_params(192)


@pytest.fixture(scope="module")
def pnnh_tiny():
    """A PNNH ViT-Ti (both paths through the shared coder) and its outputs on `_images()`."""
    keras.utils.set_random_seed(0)
    model = apps.PNNHViTTiny16(attention_connection="pnnh", classes=5, **SMALL)
    return model, _np(model(_images()))


def test_keras_round_trip_keeps_outputs_and_coder_sharing(pnnh_tiny, tmp_path):
    model, expected = pnnh_tiny
    path = str(tmp_path / "vit.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(_np(loaded(_images())), expected, atol=1e-5)
    assert loaded.name == model.name == "pnnh_attnpnnh_vit_tiny8"
    assert loaded.count_params() == model.count_params()
    coder = _blocks(loaded)[0].coder
    assert coder is not None and all(b.coder is coder for b in _blocks(loaded))


def test_weights_file_round_trip(pnnh_tiny, tmp_path):
    model, expected = pnnh_tiny
    path = str(tmp_path / "vit.weights.h5")
    model.save_weights(path)
    loaded = apps.PNNHViTTiny16(attention_connection="pnnh", classes=5, weights=path, **SMALL)
    np.testing.assert_allclose(_np(loaded(_images())), expected, atol=1e-6)


# --- pooling and head -------------------------------------------------------------------


def test_pooling_and_include_top():
    tokens_model = apps.ViTTiny16(include_top=False, pooling=None, **SMALL)
    x = _images()
    tokens = _np(tokens_model(x))
    assert tokens.shape == (2, 17, 192)
    np.testing.assert_allclose(_np(vit.ViTPooling("token")(tokens)), tokens[:, 0])
    np.testing.assert_allclose(
        # A float32 mean of 16 values of magnitude <= ~5: 16 x eps 6e-8 x 5 = 5e-6
        # in the worst summation order (NumPy pairwise vs backend sequential).
        _np(vit.ViTPooling("avg")(tokens)), tokens[:, 1:].mean(axis=1), atol=5e-6
    )
    # The classifier reads the pooled vector: with the same weights, top == head(pool(tokens)).
    top = apps.ViTTiny16(pooling="avg", classes=7, classifier_activation=None, **SMALL)
    assert top.output_shape == (None, 7)
    head = top.get_layer("predictions")
    assert head.activation is keras.activations.linear
    top.set_weights(tokens_model.get_weights() + head.get_weights())
    np.testing.assert_allclose(_np(top(x)), _np(head(tokens[:, 1:].mean(axis=1))), atol=1e-5)
    assert top.layers[-2].name == "avg_pool"
    with shapes_only():
        model = apps.ViTTiny16(include_top=False, **SMALL)
        assert model.output_shape == (None, 192)
        assert model.layers[-1].name == "token_pool"


@pytest.mark.nchw_conv
def test_patch_embedding_channels_first_matches_channels_last():
    x = _images()
    last = vit.ViTPatchEmbedding(4, 8, data_format="channels_last")
    first = vit.ViTPatchEmbedding(4, 8, data_format="channels_first")
    expected = _np(last(x))
    x_first = np.transpose(x, (0, 3, 1, 2))
    first.build(x_first.shape)
    first.set_weights(last.get_weights())
    assert expected.shape == (2, 17, 4)
    np.testing.assert_allclose(_np(first(x_first)), expected, atol=1e-5)


# --- invalid arguments ------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"connection": "skip"}, r"`connection`.*\['residual', 'pnnh', 'plain'\].*'skip'"),
        ({"attention_connection": None}, r"`attention_connection`.*None"),
        ({"patch_size": 0}, r"`patch_size`.*integer >= 1.*patch_size=0"),
        ({"patch_size": 2.5}, r"`patch_size`.*patch_size=2.5"),
        ({"patch_size": (8, 8, 8)}, r"`patch_size`"),
        ({"patch_size": 5}, r"`patch_size` must divide.*\(5, 5\).*\(32, 32, 3\)"),
        ({"input_shape": (4, 4, 3)}, r"`input_shape`.*one patch.*\(8, 8\)"),
        ({"input_shape": (None, 32, 3)}, r"`input_shape`.*height and width"),
        ({"input_shape": (32, 32)}, r"`input_shape`"),
        ({"classes": 0}, r"`classes`.*>= 1.*classes=0"),
        ({"pooling": "max"}, r"`pooling`.*\['token', 'avg'\].*'max'"),
        ({"pooling": None}, r"`pooling`.*None"),
        ({"weights": "imagenet"}, r"`weights`.*'imagenet'.*no pretrained"),
        ({"weights": "/no/such/dir/vit.weights.h5"}, r"`weights`.*no file exists"),
        ({"dropout": 1.0}, r"`dropout`.*\[0(\.0)?, 1(\.0)?\).*dropout=1.0"),
        ({"dropout": -0.1}, r"`dropout`"),
        ({"include_top": "yes"}, r"`include_top`"),
        ({"name": ""}, r"`name`"),
    ],
)
def test_invalid_arguments(kwargs, match):
    arguments = {**SMALL, **kwargs}
    with pytest.raises(ValueError, match=match):
        apps.ViTTiny16(**arguments)


def test_pooling_none_allowed_only_without_top():
    with pytest.raises(ValueError, match=r"`pooling`.*\['token', 'avg', None\].*'max'"):
        apps.ViTTiny16(include_top=False, pooling="max", **SMALL)


@pytest.mark.parametrize(
    "factory, argument",
    [
        (apps.PNNHViTTiny16, "connection"),
        (apps.PlainViTBase16, "connection"),
        (apps.PlainViTLarge16, "attention_connection"),
    ],
)
def test_aliases_do_not_take_the_argument_they_fix(factory, argument):
    with pytest.raises(TypeError, match=argument):
        factory(**{argument: "residual"}, **SMALL)


def test_arguments_are_keyword_only():
    with pytest.raises(TypeError):
        apps.ViTTiny16(False)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"include_top": 1}, "include_top"),
        ({"patch_size": 8.0}, "patch_size"),
        ({"patch_size": "8"}, "patch_size"),
        ({"patch_size": (8, True)}, "patch_size"),
        ({"classes": "3"}, "classes"),
        ({"dropout": "0.1"}, "dropout"),
        ({"dropout": True}, "dropout"),
        ({"input_shape": (32.0, 32, 3)}, "input_shape"),
        ({"name": 3}, "name"),
    ],
)
def test_arguments_of_the_wrong_kind(kwargs, name):
    with pytest.raises(TypeError, match=f"`{name}`.*{name}=") as info:
        apps.ViTTiny16(**{**SMALL, **kwargs})
    assert isinstance(info.value, ValueError)


def test_numpy_scalars_are_accepted():
    with shapes_only():
        model = apps.PNNHViTTiny16(
            include_top=np.bool_(True),
            input_shape=(np.int64(32), np.int32(32), np.int64(3)),
            patch_size=np.int64(8),
            classes=np.int64(3),
            dropout=np.float32(0.1),
        )
        assert model.output_shape == (None, 3)
        assert model.get_layer("patch_embedding").patch_size == (8, 8)


@pytest.fixture(scope="module")
def embedding():
    keras.utils.set_random_seed(0)
    layer = vit.ViTPatchEmbedding(4, 8)
    layer.build((None,) + IMAGE)
    return layer


@pytest.mark.parametrize("dtype", ["uint8", "int32", "bool", "float64"])
def test_patch_embedding_computes_integer_images_as_floats(embedding, dtype):
    # The first layer of every ViT: a uint8 `input_tensor` crashed its
    # convolution on tensorflow and torch.
    images = np.random.default_rng(0).integers(0, 2 if dtype == "bool" else 256, (2,) + IMAGE)
    images = images.astype(dtype)
    y = embedding(images)
    assert keras.backend.standardize_dtype(y.dtype) == "float32"
    np.testing.assert_allclose(_np(y), _np(embedding(images.astype("float32"))), rtol=1e-6)


def test_patch_embedding_refuses_another_image_size_and_takes_an_empty_batch(embedding):
    # Images of another size were reshaped into more rows of the batch.
    with pytest.raises(ValueError, match=r"\(2, 64, 32, 3\)"):
        embedding(np.zeros((2, 64, 32, 3), "float32"))
    assert tuple(embedding(np.zeros((0,) + IMAGE, "float32")).shape) == (0, 17, 4)
    x = _images()
    x[0, 0, 0, 0] = np.nan
    y = _np(embedding(x))
    assert np.isnan(y[0, 1]).all() and np.isfinite(y[0, 2:]).all() and np.isfinite(y[1]).all()


def test_pooling_inputs():
    tokens = (np.arange(2 * 3 * 4).reshape(2, 3, 4) % 3).astype("int32")
    for pooling in ("token", "avg"):
        y = vit.ViTPooling(pooling)(tokens)
        assert keras.backend.standardize_dtype(y.dtype) == "float32"
    np.testing.assert_allclose(_np(vit.ViTPooling("avg")(tokens)), tokens[:, 1:].mean(axis=1))
    # The mean of no patch token would be NaN; a rank-2 input has no tokens axis.
    for shape, match in (((2, 1, 4), r"at least one patch token.*\(2, 1, 4\)"), ((2, 4), "rank 3")):
        with pytest.raises(ValueError, match=match):
            vit.ViTPooling("avg")(np.ones(shape, "float32"))
    with pytest.raises(ValueError, match="pooling=1"):
        vit.ViTPooling(1)
