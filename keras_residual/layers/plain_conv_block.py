"""PlainConvBlock: ResNet's learner with no shortcut (the plain twin)."""

import keras

from keras_residual.layers._conv_learner import ConvBlock


@keras.saving.register_keras_serializable(package="keras_residual")
class PlainConvBlock(ConvBlock):
    """A ResNet block with its shortcut removed: `out = relu(learner(x))`.

    The plain twin of `PNNHConvBlock` and `ResidualConvBlock`: the same
    learner (basic 3x3-BN-ReLU-3x3-BN, or bottleneck 1x1-BN-ReLU-3x3-BN-ReLU-
    1x1-BN with the stride on the 3x3, or on the first 1x1 with
    `stride_in_first_conv=True`), and no connection beside it, so a
    stack of these is the deep plain net whose ReLUs "dissipate" the input.

    Args:
        filters: positive integer, the learner's width (the output channels
            for `"basic"`, `filters * expansion` for `"bottleneck"`).
        block_type: `"basic"` or `"bottleneck"`.
        strides: int or tuple of 2 ints, the block's stride.
        expansion: positive integer, output expansion of the bottleneck.
        data_format: `"channels_last"`, `"channels_first"` or `None`
            (`keras.config.image_data_format()`).
        kernel_initializer, kernel_regularizer, kernel_constraint: of the
            learner's convolutions (He-normal by default).
        batch_norm_momentum, batch_norm_epsilon: of the learner's batch
            normalizations.
        use_bias: whether the learner's convolutions have biases (`False`:
            batch normalization follows each; `keras.applications`' ResNets
            use `True`).
        stride_in_first_conv: bottleneck only: put the stride on the first
            1x1 convolution (ResNet v1, as `keras.applications.ResNet50`)
            rather than on the 3x3 (ResNet v1.5, the default). A basic block
            always strides its first 3x3.

    Call arguments:
        inputs: images `(batch, H, W, C)` (or channels first); integer and
            bool images are computed in the compute dtype.
        training: whether batch normalization uses batch statistics.

    Returns:
        `(batch, ceil(H / s), ceil(W / s), output_filters)` (or channels
        first).

    Example:

    >>> block = kr.layers.PlainConvBlock(16, strides=2)
    >>> tuple(block(np.zeros((2, 8, 8, 3))).shape)
    (2, 4, 4, 16)
    """


