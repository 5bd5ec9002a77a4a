"""ImageNet ResNets (18, 34, 50, 101, 152) with residual, PNNH or plain blocks.

The residual ResNet50/101/152 are `keras.applications.ResNet50/101/152`
layer for layer (ResNet v1: convolutions with biases, batch normalization
with epsilon 1.001e-5 and momentum 0.99, the stride of a bottleneck on its
first 1x1 convolution, a projection shortcut in the first block of every
stage), so they have the same parameters (25,636,712 / 44,707,176 /
60,419,944 with 1000 classes) and, given the same weights, the same outputs.
ResNet18/34 use basic blocks with the same conventions. With
`connection="pnnh"` every block is a `kr.layers.PNNHConvBlock` (a coder path
instead of the shortcut), with `connection="plain"` a `kr.layers.PlainConvBlock`
(no connection): the three networks share the stem, the learners and the
head, and differ in the connection alone.
"""

import keras

from keras_residual import _validation as check
from keras_residual.applications import _common as common
from keras_residual.layers.pnnh_coder import PNNHCoder
from keras_residual.layers.pnnh_conv_block import PNNHConvBlock
from keras_residual.layers.plain_conv_block import PlainConvBlock
from keras_residual.layers.residual_conv_block import ResidualConvBlock

BLOCKS = {"residual": ResidualConvBlock, "pnnh": PNNHConvBlock, "plain": PlainConvBlock}
# depth -> (block type, blocks per stage); the stages have 64, 128, 256, 512 filters.
DEPTHS = {
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
    152: ("bottleneck", (3, 8, 36, 3)),
}
FILTERS = (64, 128, 256, 512)
EXPANSION = 4
DEFAULT_INPUT_SHAPE = (224, 224, 3)
MIN_SIZE = 32  # as keras.applications: the last stage sees 1x1 maps
# keras.applications' ResNet conventions (Keras' default batch-norm momentum).
BLOCK_OPTIONS = dict(
    use_bias=True,
    stride_in_first_conv=True,
    batch_norm_momentum=0.99,
    batch_norm_epsilon=1.001e-5,
    kernel_initializer="he_normal",
)


# Shared with cifar_resnet.py -------------------------------------------------


def connection_options(connection, coder_sharing):
    """Check `connection` and `coder_sharing` (PNNH only, unless left at its default)."""
    connection = common.connection("connection", connection)
    coder_sharing = check.one_of("coder_sharing", coder_sharing, common.CODER_SHARING)
    if connection != "pnnh" and coder_sharing != "stage":
        raise ValueError(
            "Argument `coder_sharing` applies to connection='pnnh' only; received "
            f"coder_sharing={coder_sharing!r} with connection={connection!r}."
        )
    return connection, coder_sharing


def image_shape(input_shape, input_tensor, default, min_size, data_format):
    """The checked image shape; the tensor's own shape when only `input_tensor` is given."""
    if input_shape is None and input_tensor is not None:
        tensor_shape = getattr(input_tensor, "shape", None)
        if tensor_shape is not None and len(tensor_shape) == 4:
            input_shape = tuple(tensor_shape[1:])
    return common.input_shape(input_shape, default, min_size, data_format)


def stack_stages(x, stages, block_type, connection, coder_sharing, data_format, options):
    """The stages of blocks, named `stage<k>_block<b>` (k from 2: the stem is stage 1).

    Args:
        x: the stem's output.
        stages: `(filters, blocks, strides)` of each stage; the stride is the
            first block's.
        block_type: `"basic"` or `"bottleneck"` (expansion 4).
        connection: `"residual"`, `"pnnh"` or `"plain"`.
        coder_sharing: `"stage"`: one `PNNHCoder` (named `stage<k>_coder`)
            for the blocks of a stage that keep their input's shape; a block
            that changes it (stride or channels) has its own. `"block"`:
            every block its own coder.
        data_format: the images' data format.
        options: further keyword arguments of every block.
    """
    axis = -1 if data_format == "channels_last" else 1
    block_class = BLOCKS[connection]
    for index, (filters, blocks, strides) in enumerate(stages):
        stage = f"stage{index + 2}"
        channels = filters * EXPANSION if block_type == "bottleneck" else filters
        coder = None
        for b in range(blocks):
            block_strides = strides if b == 0 else 1
            kwargs = dict(options)
            keeps_shape = block_strides == 1 and x.shape[axis] == channels
            if connection == "pnnh" and coder_sharing == "stage" and keeps_shape:
                if coder is None:
                    coder = PNNHCoder(
                        channels,
                        data_format=data_format,
                        kernel_initializer=options.get("kernel_initializer", "he_normal"),
                        name=f"{stage}_coder",
                    )
                kwargs["coder"] = coder
            x = block_class(
                filters,
                block_type=block_type,
                strides=block_strides,
                expansion=EXPANSION,
                data_format=data_format,
                name=f"{stage}_block{b + 1}",
                **kwargs,
            )(x)
    return x


def _alias_doc(public_name, base_name, connection, example_input):
    return f"""{public_name}: `{base_name}` with `connection="{connection}"`.

    Takes the arguments of `kr.applications.{base_name}` except `connection`
    (fixed){"" if connection == "pnnh" else " and `coder_sharing` (PNNH only)"}.

    Returns:
        A `keras.Model` named `{connection}_{base_name.lower()}` unless `name` is given.

    Example:

    The connection is fixed (`kr.applications.{base_name}` takes it as an
    argument):

    >>> kr.applications.{public_name}(connection="residual")
    Traceback (most recent call last):
    ...
    TypeError: ...unexpected keyword argument 'connection'
    """


def pnnh_alias(base, public_name, default_classes, example_input):
    """`base` with `connection="pnnh"`, as a function of its own name."""

    def model(
        include_top=True,
        weights=None,
        input_tensor=None,
        input_shape=None,
        pooling=None,
        classes=default_classes,
        classifier_activation="softmax",
        coder_sharing="stage",
        name=None,
    ):
        return base(
            include_top=include_top,
            weights=weights,
            input_tensor=input_tensor,
            input_shape=input_shape,
            pooling=pooling,
            classes=classes,
            classifier_activation=classifier_activation,
            connection="pnnh",
            coder_sharing=coder_sharing,
            name=name,
        )

    model.__name__ = model.__qualname__ = public_name
    model.__module__ = base.__module__
    model.__doc__ = _alias_doc(public_name, base.__name__, "pnnh", example_input)
    return model


def plain_alias(base, public_name, default_classes, example_input):
    """`base` with `connection="plain"`, as a function of its own name."""

    def model(
        include_top=True,
        weights=None,
        input_tensor=None,
        input_shape=None,
        pooling=None,
        classes=default_classes,
        classifier_activation="softmax",
        name=None,
    ):
        return base(
            include_top=include_top,
            weights=weights,
            input_tensor=input_tensor,
            input_shape=input_shape,
            pooling=pooling,
            classes=classes,
            classifier_activation=classifier_activation,
            connection="plain",
            name=name,
        )

    model.__name__ = model.__qualname__ = public_name
    model.__module__ = base.__module__
    model.__doc__ = _alias_doc(public_name, base.__name__, "plain", example_input)
    return model


# ImageNet ResNets ------------------------------------------------------------


def _stem(image, data_format):
    """keras.applications' ResNet stem: 7x7/2 convolution, BN, ReLU, 3x3/2 max pool."""
    axis = -1 if data_format == "channels_last" else 1
    x = keras.layers.ZeroPadding2D(3, data_format=data_format, name="conv1_pad")(image)
    x = keras.layers.Conv2D(
        64,
        7,
        strides=2,
        use_bias=True,
        kernel_initializer="he_normal",
        data_format=data_format,
        name="conv1_conv",
    )(x)
    x = keras.layers.BatchNormalization(
        axis=axis,
        momentum=BLOCK_OPTIONS["batch_norm_momentum"],
        epsilon=BLOCK_OPTIONS["batch_norm_epsilon"],
        name="conv1_bn",
    )(x)
    x = keras.layers.Activation("relu", name="conv1_relu")(x)
    x = keras.layers.ZeroPadding2D(1, data_format=data_format, name="pool1_pad")(x)
    return keras.layers.MaxPooling2D(3, strides=2, data_format=data_format, name="pool1_pool")(x)


def build_resnet(
    family,
    stem,
    stages,
    block_type,
    block_options,
    default_shape,
    min_size,
    include_top,
    weights,
    input_tensor,
    input_shape,
    pooling,
    classes,
    classifier_activation,
    connection,
    coder_sharing,
    name,
):
    """Check the keras.applications arguments and build a ResNet of either family.

    Args:
        family: the default name's family, e.g. `"resnet50"`.
        stem: function `(image, data_format) -> tensor`.
        stages: `(filters, blocks, strides)` of each stage (see `stack_stages`).
        block_type, block_options: of every block.
        default_shape: the image shape when neither `input_shape` nor
            `input_tensor` gives one.
        min_size: the smallest height and width accepted.
        The rest: the public functions' arguments.
    """
    data_format = keras.config.image_data_format()
    include_top = common.include_top(include_top)
    connection, coder_sharing = connection_options(connection, coder_sharing)
    weights = common.weights(weights)
    classes = common.classes(classes)
    pooling = common.pooling(pooling)
    activation = common.classifier_activation(classifier_activation, include_top)
    name = common.model_name(name, family, connection)
    shape = image_shape(input_shape, input_tensor, default_shape, min_size, data_format)

    inputs, image = common.image_input(input_tensor, shape)
    x = stem(image, data_format)
    x = stack_stages(x, stages, block_type, connection, coder_sharing, data_format, block_options)
    outputs = common.classification_head(
        x, include_top, pooling, classes, activation, data_format
    )
    return common.finish(inputs, outputs, name, weights)


def _resnet(depth, include_top, *args):
    include_top = common.include_top(include_top)
    block_type, blocks = DEPTHS[depth]
    stages = [(f, n, 1 if i == 0 else 2) for i, (f, n) in enumerate(zip(FILTERS, blocks))]
    # As keras.applications: without the top, the spatial size is free.
    default = DEFAULT_INPUT_SHAPE if include_top else (None, None, 3)
    return build_resnet(
        f"resnet{depth}", _stem, stages, block_type, BLOCK_OPTIONS, default, MIN_SIZE,
        include_top, *args,
    )


_DOC = """Instantiates ResNet{depth} ({blocks}) with residual, PNNH or plain blocks.

    {about}

    The stem is a 7x7/2 convolution (with bias), batch normalization, ReLU
    and a 3x3/2 max pool; then four stages of {block_desc}
    blocks with 64, 128, 256 and 512 filters (stride 2 from the second
    stage on), named `stage2_block1` ... `stage5_block{last}` (stage k is the
    paper's conv{{k}}_x and keras.applications' `conv{{k}}`); then global
    average pooling and the classifier. Convolutions have biases, batch
    normalization has epsilon 1.001e-5 and momentum 0.99, as in
    `keras.applications`; kernels start He-normal (keras.applications
    uses Glorot-uniform). The model has no preprocessing layer: scale the
    images as you train it.

    Args:
        include_top: whether to end with global average pooling and the
            `classes`-way `Dense` classifier.
        weights: `None` (random initialization) or the path to a file saved
            by `model.save_weights` of the same architecture. No pretrained
            weights are available (a name such as `"imagenet"` is an error).
        input_tensor: optional Keras tensor (output of `keras.Input()`) to
            use as the image input; its shape is used when `input_shape` is
            `None`.
        input_shape: optional shape `(H, W, C)` (`(C, H, W)` for channels
            first), H and W at least 32. Defaults to `(224, 224, 3)` with the
            top and to `(None, None, 3)` without.
        pooling: with `include_top=False`: `None` (the last stage's feature
            maps, for use as a backbone), `"avg"` or `"max"` (global
            pooling to a vector).
        classes: positive integer, the classifier's outputs.
        classifier_activation: the classifier's activation (`None` for
            logits).
        connection: `"residual"` (`kr.layers.ResidualConvBlock`: ResNet's
            shortcut, identity or 1x1 projection with BN in the first block
            of each stage), `"pnnh"` (`kr.layers.PNNHConvBlock`: a coder
            `D(relu(E(x)))` instead of the shortcut) or `"plain"`
            (`kr.layers.PlainConvBlock`: no connection).
        coder_sharing: PNNH only. `"stage"`: one `PNNHCoder` (named
            `stage<k>_coder`) serves every block of a stage that keeps its
            input's shape, so its parameters count once; a block that
            changes the shape (the first of a stage, except where it keeps
            the channels and stride 1) has its own coder. `"block"`: every
            block has its own coder.
        name: the model's name; defaults to `"<connection>_resnet{depth}"`.

    Returns:
        A `keras.Model`. {params}

    Example:

    Building a ResNet{depth} initialises all of its weights (seconds on a
    CPU; `kr.applications.cifar_resnet`'s example builds a small ResNet).
    The arguments are checked before anything is built:

    >>> kr.applications.ResNet{depth}(weights="imagenet")
    Traceback (most recent call last):
    ...
    ValueError: Argument `weights` must be None or the path to a weights file; ...
    >>> kr.applications.ResNet{depth}(include_top=False, input_shape=(16, 16, 3))
    Traceback (most recent call last):
    ...
    ValueError: Argument `input_shape` is too small for this network: ... at least (32, 32) ...
    """

_ABOUT_BASIC = (
    "ResNet{depth} of He et al. (2016), which keras.applications lacks, with the\n"
    "    conventions of its ResNet50."
)
_ABOUT_BOTTLENECK = (
    "The residual network is `keras.applications.ResNet{depth}` layer for layer\n"
    "    (ResNet v1: the stride of a bottleneck on its first 1x1 convolution), with\n"
    "    the same parameters and, given its weights, the same outputs."
)


def _doc(depth, params):
    block_type, blocks = DEPTHS[depth]
    about = _ABOUT_BASIC if block_type == "basic" else _ABOUT_BOTTLENECK
    return _DOC.format(
        depth=depth,
        blocks="-".join(str(b) for b in blocks) + " blocks",
        about=about.format(depth=depth),
        block_desc="basic" if block_type == "basic" else "bottleneck (expansion 4)",
        last=blocks[-1],
        params=f"With 1000 classes the residual network has\n        {params:,} parameters.",
        features=512 if block_type == "basic" else 2048,
    )


def ResNet18(
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=1000,
    classifier_activation="softmax",
    connection="residual",
    coder_sharing="stage",
    name=None,
):
    return _resnet(
        18,
        include_top,
        weights,
        input_tensor,
        input_shape,
        pooling,
        classes,
        classifier_activation,
        connection,
        coder_sharing,
        name,
    )


def ResNet34(
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=1000,
    classifier_activation="softmax",
    connection="residual",
    coder_sharing="stage",
    name=None,
):
    return _resnet(
        34,
        include_top,
        weights,
        input_tensor,
        input_shape,
        pooling,
        classes,
        classifier_activation,
        connection,
        coder_sharing,
        name,
    )


def ResNet50(
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=1000,
    classifier_activation="softmax",
    connection="residual",
    coder_sharing="stage",
    name=None,
):
    return _resnet(
        50,
        include_top,
        weights,
        input_tensor,
        input_shape,
        pooling,
        classes,
        classifier_activation,
        connection,
        coder_sharing,
        name,
    )


def ResNet101(
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=1000,
    classifier_activation="softmax",
    connection="residual",
    coder_sharing="stage",
    name=None,
):
    return _resnet(
        101,
        include_top,
        weights,
        input_tensor,
        input_shape,
        pooling,
        classes,
        classifier_activation,
        connection,
        coder_sharing,
        name,
    )


def ResNet152(
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=1000,
    classifier_activation="softmax",
    connection="residual",
    coder_sharing="stage",
    name=None,
):
    return _resnet(
        152,
        include_top,
        weights,
        input_tensor,
        input_shape,
        pooling,
        classes,
        classifier_activation,
        connection,
        coder_sharing,
        name,
    )


# Residual parameter counts with 1000 classes (measured; the test checks them).
PARAMS = {18: 11_703_912, 34: 21_823_208, 50: 25_636_712, 101: 44_707_176, 152: 60_419_944}

ResNet18.__doc__ = _doc(18, PARAMS[18])
ResNet34.__doc__ = _doc(34, PARAMS[34])
ResNet50.__doc__ = _doc(50, PARAMS[50])
ResNet101.__doc__ = _doc(101, PARAMS[101])
ResNet152.__doc__ = _doc(152, PARAMS[152])

PNNHResNet18 = pnnh_alias(ResNet18, "PNNHResNet18", 1000, (64, 64, 3))
PNNHResNet34 = pnnh_alias(ResNet34, "PNNHResNet34", 1000, (64, 64, 3))
PNNHResNet50 = pnnh_alias(ResNet50, "PNNHResNet50", 1000, (64, 64, 3))
PNNHResNet101 = pnnh_alias(ResNet101, "PNNHResNet101", 1000, (64, 64, 3))
PNNHResNet152 = pnnh_alias(ResNet152, "PNNHResNet152", 1000, (64, 64, 3))
PlainResNet18 = plain_alias(ResNet18, "PlainResNet18", 1000, (64, 64, 3))
PlainResNet34 = plain_alias(ResNet34, "PlainResNet34", 1000, (64, 64, 3))
PlainResNet50 = plain_alias(ResNet50, "PlainResNet50", 1000, (64, 64, 3))
PlainResNet101 = plain_alias(ResNet101, "PlainResNet101", 1000, (64, 64, 3))
PlainResNet152 = plain_alias(ResNet152, "PlainResNet152", 1000, (64, 64, 3))
