"""ViT family: ViT-Ti/S/B/L with 16x16 patches, and their PNNH and plain twins.

The architecture is keras-hub's `ViTBackbone` (patch embedding by a strided
convolution, a class token, a learned position embedding, pre-LN encoder
blocks and a final layer normalization), with every encoder block a
`kr.layers.PNNHTransformerBlock` so that the residual, plain and PNNH
networks differ in their connections alone. A residual ViT-B/16 at 224x224
has exactly the parameters of keras-hub's
`ViTBackbone(image_shape=(224, 224, 3), patch_size=16, num_layers=12,
num_heads=12, hidden_dim=768, mlp_dim=3072)`.
"""

import keras
from keras import initializers
from keras import ops

from keras_residual import _validation as check
from keras_residual.applications import _common as common
from keras_residual.layers.pnnh_coder import PNNHCoder
from keras_residual.layers.pnnh_transformer_block import PNNHTransformerBlock

# name -> (hidden_dim, num_layers, num_heads); the MLP is 4 * hidden_dim wide.
SIZES = {
    "tiny": (192, 12, 3),
    "small": (384, 12, 6),
    "base": (768, 12, 12),
    "large": (1024, 24, 16),
}
DEFAULT_INPUT_SHAPE = (224, 224, 3)
LAYER_NORM_EPSILON = 1e-6
POOLINGS = ("token", "avg")

__all__ = [
    "ViTTiny16",
    "ViTSmall16",
    "ViTBase16",
    "ViTLarge16",
    "PNNHViTTiny16",
    "PNNHViTSmall16",
    "PNNHViTBase16",
    "PNNHViTLarge16",
    "PlainViTTiny16",
    "PlainViTSmall16",
    "PlainViTBase16",
    "PlainViTLarge16",
    "ViTPatchEmbedding",
    "ViTPooling",
]


def _spatial(shape, data_format):
    return tuple(shape[:2]) if data_format == "channels_last" else tuple(shape[1:])


@keras.saving.register_keras_serializable(package="keras_residual")
class ViTPatchEmbedding(keras.layers.Layer):
    """Patches, class token and position embedding of a ViT (keras-hub's).

    Cuts the image into non-overlapping `patch_size` patches, embeds each by a
    convolution with kernel = stride = `patch_size` (with bias), prepends a
    learned class token and adds a learned position embedding (one vector per
    patch, plus one for the class token). The number of patches is fixed by
    the image size the layer is built for.

    Args:
        hidden_dim: positive integer, the token width.
        patch_size: positive integer or tuple of 2, the patch height and
            width (must divide the image's).
        data_format: `"channels_last"`, `"channels_first"` or `None`
            (`keras.config.image_data_format()`).
        kernel_initializer: of the patch projection.
        class_token_initializer: of the class token.
        position_initializer: of the position embedding.

    Call arguments:
        inputs: images `(batch, H, W, C)` (or channels first) of the size the
            layer was built for; integer and bool images are computed in the
            compute dtype.

    Returns:
        Tokens `(batch, 1 + (H / patch_h) * (W / patch_w), hidden_dim)`, the
        class token first.

    Example:

    >>> layer = kr.applications.vit.ViTPatchEmbedding(64, 8)
    >>> tuple(layer(np.zeros((2, 32, 32, 3))).shape)
    (2, 17, 64)
    """

    def __init__(
        self,
        hidden_dim,
        patch_size,
        data_format=None,
        kernel_initializer="glorot_uniform",
        class_token_initializer="random_normal",
        position_initializer=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.hidden_dim = check.positive_int("hidden_dim", hidden_dim)
        self.patch_size = check.int_pair("patch_size", patch_size)
        self.data_format = check.data_format(data_format)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.class_token_initializer = initializers.get(class_token_initializer)
        if position_initializer is None:
            position_initializer = keras.initializers.RandomNormal(stddev=0.02)
        self.position_initializer = initializers.get(position_initializer)
        self.projection = keras.layers.Conv2D(
            self.hidden_dim,
            kernel_size=self.patch_size,
            strides=self.patch_size,
            padding="valid",
            data_format=self.data_format,
            kernel_initializer=check.fresh_initializer(self.kernel_initializer),
            name="projection",
            dtype=self.dtype_policy,
        )
        self.num_patches = None

    def _grid(self, input_shape):
        if len(input_shape) != 4:
            raise ValueError(
                f"{self.__class__.__name__} `{self.name}` takes images of rank 4; "
                f"received input_shape={tuple(input_shape)}."
            )
        shape = tuple(input_shape[1:])
        size = _spatial(shape, self.data_format)
        if None in size:
            raise ValueError(
                f"{self.__class__.__name__} `{self.name}` needs a known image height "
                "and width (the position embedding has one entry per patch); "
                f"received input_shape={tuple(input_shape)}."
            )
        if any(s % p for s, p in zip(size, self.patch_size)):
            raise ValueError(
                f"Argument `patch_size` must divide the image height and width; "
                f"received patch_size={self.patch_size} for images of size {size}."
            )
        return tuple(s // p for s, p in zip(size, self.patch_size))

    def build(self, input_shape):
        grid = self._grid(input_shape)
        self.num_patches = grid[0] * grid[1]
        self._image_shape = tuple(input_shape[1:])
        self.projection.build(tuple(input_shape))
        self.class_token = self.add_weight(
            shape=(1, 1, self.hidden_dim),
            name="class_token",
            initializer=check.fresh_initializer(self.class_token_initializer),
        )
        self.position_embedding = self.add_weight(
            shape=(1, self.num_patches + 1, self.hidden_dim),
            name="position_embedding",
            initializer=check.fresh_initializer(self.position_initializer),
        )

    def call(self, inputs):
        inputs = check.floating(inputs, self.compute_dtype)
        shape = tuple(inputs.shape[1:])
        if len(shape) != 3 or any(
            check.static_dim(s) not in (None, e) for s, e in zip(shape, self._image_shape)
        ):
            # Checked here: images of another size would be reshaped into more
            # rows of the batch.
            size = _spatial(self._image_shape, self.data_format)
            raise ValueError(
                f"{self.__class__.__name__} `{self.name}` was built for images of "
                f"shape {self._image_shape} (height x width "
                f"{size[0]}x{size[1]}, {self.num_patches} patches: the position "
                f"embedding has one entry per patch); received inputs of shape "
                f"{tuple(inputs.shape)}."
            )
        if check.empty_batch(inputs):
            # As Keras layers: an empty output (tf's convolution mishandles an
            # empty batch).
            return ops.zeros((0, self.num_patches + 1, self.hidden_dim), self.compute_dtype)
        x = self.projection(inputs)
        if self.data_format == "channels_first":
            x = ops.transpose(x, (0, 2, 3, 1))
        x = ops.reshape(x, (-1, self.num_patches, self.hidden_dim))
        class_token = ops.tile(ops.cast(self.class_token, x.dtype), (ops.shape(x)[0], 1, 1))
        x = ops.concatenate([class_token, x], axis=1)
        return x + ops.cast(self.position_embedding, x.dtype)

    def compute_output_shape(self, input_shape):
        grid = self._grid(input_shape)
        return (input_shape[0], grid[0] * grid[1] + 1, self.hidden_dim)

    def get_config(self):
        config = {
            "hidden_dim": self.hidden_dim,
            "patch_size": self.patch_size,
            "data_format": self.data_format,
            "kernel_initializer": initializers.serialize(self.kernel_initializer),
            "class_token_initializer": initializers.serialize(self.class_token_initializer),
            "position_initializer": initializers.serialize(self.position_initializer),
        }
        return {**super().get_config(), **config}


@keras.saving.register_keras_serializable(package="keras_residual")
class ViTPooling(keras.layers.Layer):
    """One vector per image from a ViT's tokens.

    Args:
        pooling: `"token"` for the class token (the first token), `"avg"`
            for the mean of the patch tokens (every token but the first).

    Call arguments:
        inputs: tokens `(batch, 1 + patches, hidden_dim)`, class token first.

    Returns:
        `(batch, hidden_dim)`.

    Example:

    >>> tuple(kr.applications.vit.ViTPooling("avg")(np.ones((2, 17, 64))).shape)
    (2, 64)
    """

    def __init__(self, pooling="token", **kwargs):
        super().__init__(**kwargs)
        self.pooling = common.pooling(pooling, POOLINGS)

    def build(self, input_shape):
        if len(input_shape) != 3:
            raise ValueError(
                f"{self.__class__.__name__} `{self.name}` takes tokens of rank 3 "
                f"(batch, 1 + patches, hidden_dim); received input_shape="
                f"{tuple(input_shape)}."
            )
        if self.pooling == "avg" and input_shape[1] is not None and input_shape[1] < 2:
            raise ValueError(
                f"{self.__class__.__name__} `{self.name}` with pooling='avg' averages "
                "the patch tokens (all but the first) and needs at least one patch "
                f"token; received input_shape={tuple(input_shape)}."
            )

    def call(self, inputs):
        inputs = check.floating(inputs, self.compute_dtype)
        if self.pooling == "token":
            return inputs[:, 0, :]
        return ops.mean(inputs[:, 1:, :], axis=1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[-1])

    def get_config(self):
        return {**super().get_config(), "pooling": self.pooling}


def _input_shape(input_shape, input_tensor, patch, data_format):
    """The image shape, checked against the patch size."""
    if input_shape is None and input_tensor is not None:
        # The position embedding depends on the image size: take the tensor's.
        tensor_shape = tuple(getattr(input_tensor, "shape", ())[1:])
        if len(tensor_shape) == 3:
            input_shape = tensor_shape
    shape = common.input_shape(input_shape, DEFAULT_INPUT_SHAPE, 1, data_format)
    size = _spatial(shape, data_format)
    if None in size:
        raise ValueError(
            "Argument `input_shape` must give the image height and width (a ViT's "
            "position embedding has one entry per patch); received "
            f"input_shape={input_shape!r}."
        )
    if any(s < p for s, p in zip(size, patch)):
        raise ValueError(
            f"Argument `input_shape` must be at least one patch {patch} high and "
            f"wide; received input_shape={shape} with patch_size={patch}."
        )
    if any(s % p for s, p in zip(size, patch)):
        raise ValueError(
            f"Argument `patch_size` must divide the image height and width; "
            f"received patch_size={patch} for input_shape={shape} "
            f"(height x width {size[0]}x{size[1]})."
        )
    return shape


def _family(size, patch, attention_connection):
    """`vit_tiny16`, `vit_tiny8`, `vit_tiny8x4`, `attnpnnh_vit_tiny16`, ..."""
    tag = str(patch[0]) if patch[0] == patch[1] else f"{patch[0]}x{patch[1]}"
    family = f"vit_{size}{tag}"
    if attention_connection != "residual":
        family = f"attn{attention_connection}_{family}"
    return family


def _vit(
    size,
    *,
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    patch_size=16,
    pooling="token",
    classes=1000,
    classifier_activation="softmax",
    dropout=0.0,
    connection="residual",
    attention_connection="residual",
    name=None,
):
    """A ViT of one of the sizes `"tiny"`, `"small"`, `"base"`, `"large"` (see `ViTTiny16`)."""
    # === Arguments ===
    size = check.one_of("size", size, tuple(SIZES))
    hidden_dim, num_layers, num_heads = SIZES[size]
    weights_path = common.weights(weights)
    include_top = common.include_top(include_top)
    connection = common.connection("connection", connection)
    attention_connection = common.connection("attention_connection", attention_connection)
    patch = check.int_pair("patch_size", patch_size)
    pooling = common.pooling(pooling, POOLINGS if include_top else POOLINGS + (None,))
    classes = common.classes(classes)
    classifier_activation = common.classifier_activation(classifier_activation, include_top)
    dropout = check.rate("dropout", dropout)
    data_format = keras.config.image_data_format()
    shape = _input_shape(input_shape, input_tensor, patch, data_format)
    name = common.model_name(name, _family(size, patch, attention_connection), connection)

    # === Layers ===
    inputs, image = common.image_input(input_tensor, shape)
    uses_coder = "pnnh" in (connection, attention_connection)
    # One coder for every block: its parameters count once.
    coder = PNNHCoder(hidden_dim, name="coder") if uses_coder else None

    # === Functional model ===
    x = ViTPatchEmbedding(hidden_dim, patch, data_format=data_format, name="patch_embedding")(
        image
    )
    x = keras.layers.Dropout(dropout, name="embedding_dropout")(x)
    for i in range(num_layers):
        x = PNNHTransformerBlock(
            num_heads,
            hidden_dim,
            4 * hidden_dim,
            coder=coder,
            mlp_connection=connection,
            attention_connection=attention_connection,
            dropout=dropout,
            layer_norm_epsilon=LAYER_NORM_EPSILON,
            name=f"transformer_block_{i + 1}",
        )(x)
    x = keras.layers.LayerNormalization(epsilon=LAYER_NORM_EPSILON, name="encoder_norm")(x)
    if pooling is not None:
        x = ViTPooling(pooling, name=f"{pooling}_pool")(x)
    if include_top:
        x = keras.layers.Dense(classes, activation=classifier_activation, name="predictions")(x)
    return common.finish(inputs, x, name, weights_path)


DOCSTRING = """Instantiates the {title} architecture{variant}.

    {summary}: {hidden_dim}-wide tokens, {num_layers} pre-LN encoder blocks of
    {num_heads} heads and a {mlp_dim}-wide MLP, 16x16 patches by default. The
    layers are keras-hub's `ViTBackbone` (patch embedding, class token,
    learned position embedding, encoder blocks, final layer normalization)
    with each block a `kr.layers.PNNHTransformerBlock`.{connection_doc}

    There are no pretrained weights (`weights` takes a file of your own).

    Args:
        include_top: whether to end with the pooled token and the
            `predictions` classifier (`Dense(classes)`).
        weights: `None` (random initialization) or the path to a weights
            file saved with `model.save_weights(...)`.
        input_tensor: optional Keras tensor (output of `keras.Input()`) or
            tensor to use as the image input.
        input_shape: optional image shape, `(224, 224, 3)` by default
            (channels first under that data format). Height and width must
            be known and multiples of `patch_size`. When `None` and
            `input_tensor` is given, the tensor's shape is used.
        patch_size: positive integer (or tuple of 2), the patch height and
            width. Defaults to 16.
        pooling: how the image is summarised: `"token"` (default) the class
            token, `"avg"` the mean of the patch tokens (the class token
            excluded). With `include_top=False`, `None` returns the whole
            token sequence `(batch, 1 + patches, {hidden_dim})`, class token
            first, after the final layer normalization.
        classes: positive integer, the classifier's classes (when
            `include_top`).
        classifier_activation: the classifier's activation (`None` for
            logits).
        dropout: float in [0, 1), dropout of the embeddings and inside every
            block (after attention and in the MLP), as keras-hub's
            `dropout_rate`.{connection_args}
        name: the model's name; by default `<connection>_{family}` (the
            number is the patch size: `vit_{size}8` for `patch_size=8`,
            `vit_{size}16x8` for `(16, 8)`), with `attn<attention_connection>_`
            before `vit` when the attention path is not residual (e.g.
            `{example_name}`).

    Returns:
        A `keras.Model`: class probabilities `(batch, classes)` with
        `include_top`, otherwise pooled features `(batch, {hidden_dim})` or
        tokens `(batch, 1 + patches, {hidden_dim})` for `pooling=None`.

    Example:

    Building a ViT initialises all of its weights (seconds on a CPU for the
    larger ones; `kr.applications.cifar_resnet`'s example builds a small
    ResNet the same way). The arguments are checked before anything is
    built:

    >>> kr.applications.{function}(weights="imagenet")
    Traceback (most recent call last):
    ...
    ValueError: Argument `weights` must be None or the path to a weights file; ...
    >>> kr.applications.{function}(input_shape=(30, 30, 3))  # 16x16 patches
    Traceback (most recent call last):
    ...
    ValueError: Argument `patch_size` must divide the image height and width; ...
    """

CONNECTION_ARGS = """
        connection: the MLP path's connection: `"residual"` (default),
            `"pnnh"` (the coder replaces the residual, as in the paper) or
            `"plain"` (no connection).
        attention_connection: the attention path's connection, the same
            three values; `"residual"` by default. Paths that are `"pnnh"`
            share one `kr.layers.PNNHCoder` across all blocks."""
ATTENTION_ARG = """
        attention_connection: the attention path's connection:
            `"residual"` (default), `"pnnh"` (the same shared coder) or
            `"plain"`."""


def _document(function, size, variant):
    hidden_dim, num_layers, num_heads = SIZES[size]
    title = {"tiny": "ViT-Ti/16", "small": "ViT-S/16", "base": "ViT-B/16", "large": "ViT-L/16"}
    if variant == "residual":
        text, summary = "", "The residual ViT"
        connection_doc, connection_args = "", CONNECTION_ARGS
        example = f"pnnh_attnpnnh_vit_{size}16"
    elif variant == "pnnh":
        text, summary = " with PNNH MLP paths", "A PNNH ViT"
        connection_doc = (
            "\n\n    Every block's MLP path adds the output of one `kr.layers.PNNHCoder`,"
            "\n    shared by all blocks, instead of its residual (`connection=\"pnnh\"`,"
            "\n    fixed)."
        )
        connection_args = ATTENTION_ARG
        example = f"pnnh_attnpnnh_vit_{size}16"
    else:
        text, summary = " without connections", "A plain ViT"
        connection_doc = (
            "\n\n    Neither path of any block has a connection (`connection` and"
            "\n    `attention_connection` fixed to `\"plain\"`)."
        )
        connection_args = ""
        example = f"plain_attnplain_vit_{size}16"
    function.__doc__ = DOCSTRING.format(
        title=title[size],
        variant=text,
        summary=summary,
        hidden_dim=hidden_dim,
        num_layers=num_layers,
        num_heads=num_heads,
        mlp_dim=4 * hidden_dim,
        connection_doc=connection_doc,
        connection_args=connection_args,
        family=f"vit_{size}16",
        size=size,
        example_name=example,
        function=function.__name__,
    )
    return function


# The public constructors: each passes its arguments (`locals()`, read before
# any other name is bound) to `_vit`, adding the connections it fixes.


def ViTTiny16(
    *,
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    patch_size=16,
    pooling="token",
    classes=1000,
    classifier_activation="softmax",
    dropout=0.0,
    connection="residual",
    attention_connection="residual",
    name=None,
):
    return _vit("tiny", **locals())


_document(ViTTiny16, "tiny", "residual")


def ViTSmall16(
    *,
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    patch_size=16,
    pooling="token",
    classes=1000,
    classifier_activation="softmax",
    dropout=0.0,
    connection="residual",
    attention_connection="residual",
    name=None,
):
    return _vit("small", **locals())


_document(ViTSmall16, "small", "residual")


def ViTBase16(
    *,
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    patch_size=16,
    pooling="token",
    classes=1000,
    classifier_activation="softmax",
    dropout=0.0,
    connection="residual",
    attention_connection="residual",
    name=None,
):
    return _vit("base", **locals())


_document(ViTBase16, "base", "residual")


def ViTLarge16(
    *,
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    patch_size=16,
    pooling="token",
    classes=1000,
    classifier_activation="softmax",
    dropout=0.0,
    connection="residual",
    attention_connection="residual",
    name=None,
):
    return _vit("large", **locals())


_document(ViTLarge16, "large", "residual")


def PNNHViTTiny16(
    *,
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    patch_size=16,
    pooling="token",
    classes=1000,
    classifier_activation="softmax",
    dropout=0.0,
    attention_connection="residual",
    name=None,
):
    return _vit("tiny", connection="pnnh", **locals())


_document(PNNHViTTiny16, "tiny", "pnnh")


def PNNHViTSmall16(
    *,
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    patch_size=16,
    pooling="token",
    classes=1000,
    classifier_activation="softmax",
    dropout=0.0,
    attention_connection="residual",
    name=None,
):
    return _vit("small", connection="pnnh", **locals())


_document(PNNHViTSmall16, "small", "pnnh")


def PNNHViTBase16(
    *,
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    patch_size=16,
    pooling="token",
    classes=1000,
    classifier_activation="softmax",
    dropout=0.0,
    attention_connection="residual",
    name=None,
):
    return _vit("base", connection="pnnh", **locals())


_document(PNNHViTBase16, "base", "pnnh")


def PNNHViTLarge16(
    *,
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    patch_size=16,
    pooling="token",
    classes=1000,
    classifier_activation="softmax",
    dropout=0.0,
    attention_connection="residual",
    name=None,
):
    return _vit("large", connection="pnnh", **locals())


_document(PNNHViTLarge16, "large", "pnnh")


def PlainViTTiny16(
    *,
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    patch_size=16,
    pooling="token",
    classes=1000,
    classifier_activation="softmax",
    dropout=0.0,
    name=None,
):
    return _vit("tiny", connection="plain", attention_connection="plain", **locals())


_document(PlainViTTiny16, "tiny", "plain")


def PlainViTSmall16(
    *,
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    patch_size=16,
    pooling="token",
    classes=1000,
    classifier_activation="softmax",
    dropout=0.0,
    name=None,
):
    return _vit("small", connection="plain", attention_connection="plain", **locals())


_document(PlainViTSmall16, "small", "plain")


def PlainViTBase16(
    *,
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    patch_size=16,
    pooling="token",
    classes=1000,
    classifier_activation="softmax",
    dropout=0.0,
    name=None,
):
    return _vit("base", connection="plain", attention_connection="plain", **locals())


_document(PlainViTBase16, "base", "plain")


def PlainViTLarge16(
    *,
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    patch_size=16,
    pooling="token",
    classes=1000,
    classifier_activation="softmax",
    dropout=0.0,
    name=None,
):
    return _vit("large", connection="plain", attention_connection="plain", **locals())


_document(PlainViTLarge16, "large", "plain")
