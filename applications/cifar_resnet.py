"""CIFAR ResNets (20, 32, 44, 56, 110) with residual, PNNH or plain blocks.

The 6n + 2 layer networks of He et al. (2016, section 4.2): a 3x3
convolution with 16 filters, three stages of n basic blocks with 16, 32 and
64 filters (strides 1, 2, 2), global average pooling and the classifier.
Where a block changes the shape, the residual network's shortcut is a 1x1
projection with batch normalization (the paper's option B, what
`kr.layers.ResidualConvBlock` does) rather than the paper's option A
(strided identity padded with zero channels, no parameters), so it has a few
more parameters than the paper's (ResNet20 with 10 classes: 272,474 trainable
here, 269,722 with option A, "0.27M" in the paper's table 6). Convolutions have no biases; batch
normalization has epsilon 1e-5 and momentum 0.9 (PyTorch's defaults, those
of most CIFAR reproductions).

Example:

>>> model = kr.applications.ResNet20(connection="pnnh")  # or kr.applications.PNNHResNet20()
>>> model.name, model.output_shape
('pnnh_resnet20', (None, 10))
"""

import keras

from keras_residual.applications.resnet import build_resnet
from keras_residual.applications.resnet import plain_alias
from keras_residual.applications.resnet import pnnh_alias

# depth -> n, the number of basic blocks per stage (depth = 6n + 2).
DEPTHS = {20: 3, 32: 5, 44: 7, 56: 9, 110: 18}
FILTERS = (16, 32, 64)
DEFAULT_INPUT_SHAPE = (32, 32, 3)
MIN_SIZE = 8  # the two stride-2 stages leave the last stage 2x2 maps
BLOCK_OPTIONS = dict(
    use_bias=False,
    batch_norm_momentum=0.9,
    batch_norm_epsilon=1e-5,
    kernel_initializer="he_normal",
)


def _stem(image, data_format):
    """A 3x3 convolution with 16 filters, batch normalization and ReLU."""
    axis = -1 if data_format == "channels_last" else 1
    x = keras.layers.Conv2D(
        FILTERS[0],
        3,
        padding="same",
        use_bias=False,
        kernel_initializer="he_normal",
        data_format=data_format,
        name="conv1_conv",
    )(image)
    x = keras.layers.BatchNormalization(
        axis=axis,
        momentum=BLOCK_OPTIONS["batch_norm_momentum"],
        epsilon=BLOCK_OPTIONS["batch_norm_epsilon"],
        name="conv1_bn",
    )(x)
    return keras.layers.Activation("relu", name="conv1_relu")(x)


def _cifar_resnet(depth, *args):
    n = DEPTHS[depth]
    stages = [(f, n, 1 if i == 0 else 2) for i, f in enumerate(FILTERS)]
    return build_resnet(
        f"resnet{depth}", _stem, stages, "basic", BLOCK_OPTIONS, DEFAULT_INPUT_SHAPE, MIN_SIZE,
        *args,
    )


_DOC = """Instantiates the CIFAR ResNet{depth} (n = {n}) with residual, PNNH or plain blocks.

    He et al. (2016, section 4.2): 6n + 2 = {depth} layers. A 3x3
    convolution with 16 filters, batch normalization and ReLU (no max pool);
    three stages of n = {n} basic blocks (3x3-BN-ReLU-3x3-BN) with 16, 32 and
    64 filters and strides 1, 2, 2, named `stage2_block1` ...
    `stage4_block{n}` (the stem is `conv1`); global average pooling and the
    classifier. Convolutions have no biases, batch normalization has epsilon
    1e-5 and momentum 0.9, kernels start He-normal. The residual network's
    shortcut is the identity, or a 1x1 projection with batch normalization
    where the shape changes (the paper's option B; the paper's CIFAR table
    uses option A, zero-padded identity, with no parameters).

    Args:
        include_top: whether to end with global average pooling and the
            `classes`-way `Dense` classifier.
        weights: `None` (random initialization) or the path to a file saved
            by `model.save_weights` of the same architecture. No pretrained
            weights are available (a name such as `"cifar10"` is an error).
        input_tensor: optional Keras tensor (output of `keras.Input()`) to
            use as the image input; its shape is used when `input_shape` is
            `None`.
        input_shape: optional shape `(H, W, C)` (`(C, H, W)` for channels
            first), H and W at least 8; defaults to `(32, 32, 3)`.
        pooling: with `include_top=False`: `None` (the last stage's feature
            maps), `"avg"` or `"max"` (global pooling to a vector).
        classes: positive integer, the classifier's outputs.
        classifier_activation: the classifier's activation (`None` for
            logits).
        connection: `"residual"` (`kr.layers.ResidualConvBlock`), `"pnnh"`
            (`kr.layers.PNNHConvBlock`: a coder `D(relu(E(x)))` instead of
            the shortcut) or `"plain"` (`kr.layers.PlainConvBlock`: no
            connection).
        coder_sharing: PNNH only. `"stage"`: one `PNNHCoder` (named
            `stage<k>_coder`) serves every block of a stage that keeps its
            input's shape (all of the first stage, all but the first block of
            the others), so its parameters count once; `"block"`: every block
            has its own coder.
        name: the model's name; defaults to `"<connection>_resnet{depth}"`.

    Returns:
        A `keras.Model`. With 10 classes the residual network has
        {params:,} parameters ({trainable:,} trainable).

    Example:

    Building one takes from a fraction of a second (ResNet20) to seconds
    (ResNet110) on a CPU; the `kr.applications.cifar_resnet` module's
    example builds a ResNet20. The arguments are checked before anything is
    built:

    >>> kr.applications.ResNet{depth}(weights="cifar10")
    Traceback (most recent call last):
    ...
    ValueError: Argument `weights` must be None or the path to a weights file; ...
    >>> kr.applications.ResNet{depth}(input_shape=(4, 4, 3))
    Traceback (most recent call last):
    ...
    ValueError: Argument `input_shape` is too small for this network: ... at least (8, 8) ...
    """


def ResNet20(
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=10,
    classifier_activation="softmax",
    connection="residual",
    coder_sharing="stage",
    name=None,
):
    return _cifar_resnet(
        20,
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


def ResNet32(
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=10,
    classifier_activation="softmax",
    connection="residual",
    coder_sharing="stage",
    name=None,
):
    return _cifar_resnet(
        32,
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


def ResNet44(
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=10,
    classifier_activation="softmax",
    connection="residual",
    coder_sharing="stage",
    name=None,
):
    return _cifar_resnet(
        44,
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


def ResNet56(
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=10,
    classifier_activation="softmax",
    connection="residual",
    coder_sharing="stage",
    name=None,
):
    return _cifar_resnet(
        56,
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


def ResNet110(
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=10,
    classifier_activation="softmax",
    connection="residual",
    coder_sharing="stage",
    name=None,
):
    return _cifar_resnet(
        110,
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


# Residual parameter counts with 10 classes, (all, trainable): `count_params()`
# includes batch normalization's moving statistics. The tests check them.
PARAMS = {
    20: (274_042, 272_474),
    32: (469_370, 466_906),
    44: (664_698, 661_338),
    56: (860_026, 855_770),
    110: (1_739_002, 1_730_714),
}


def _doc(depth):
    total, trainable = PARAMS[depth]
    return _DOC.format(depth=depth, n=DEPTHS[depth], params=total, trainable=trainable)


ResNet20.__doc__ = _doc(20)
ResNet32.__doc__ = _doc(32)
ResNet44.__doc__ = _doc(44)
ResNet56.__doc__ = _doc(56)
ResNet110.__doc__ = _doc(110)

PNNHResNet20 = pnnh_alias(ResNet20, "PNNHResNet20", 10, (32, 32, 3))
PNNHResNet32 = pnnh_alias(ResNet32, "PNNHResNet32", 10, (32, 32, 3))
PNNHResNet44 = pnnh_alias(ResNet44, "PNNHResNet44", 10, (32, 32, 3))
PNNHResNet56 = pnnh_alias(ResNet56, "PNNHResNet56", 10, (32, 32, 3))
PNNHResNet110 = pnnh_alias(ResNet110, "PNNHResNet110", 10, (32, 32, 3))
PlainResNet20 = plain_alias(ResNet20, "PlainResNet20", 10, (32, 32, 3))
PlainResNet32 = plain_alias(ResNet32, "PlainResNet32", 10, (32, 32, 3))
PlainResNet44 = plain_alias(ResNet44, "PlainResNet44", 10, (32, 32, 3))
PlainResNet56 = plain_alias(ResNet56, "PlainResNet56", 10, (32, 32, 3))
PlainResNet110 = plain_alias(ResNet110, "PlainResNet110", 10, (32, 32, 3))
