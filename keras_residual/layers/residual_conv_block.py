"""ResidualConvBlock: ResNet's block, the residual twin."""

import keras

from keras_residual import _validation as check
from keras_residual.layers._conv_learner import ConvBlock


@keras.saving.register_keras_serializable(package="keras_residual")
class ResidualConvBlock(ConvBlock):
    """ResNet's (v1) block: `out = relu(learner(x) + shortcut(x))`.

    The residual twin of `PNNHConvBlock` and `PlainConvBlock`, with the same
    learner. The shortcut is the identity when the block keeps the shape,
    and otherwise a projection, a strided 1x1 convolution followed by batch
    normalization (ResNet's option B). After build, `block.projection` and
    `block.projection_norm` are these layers, or `None` for the identity.

    Args:
        filters: positive integer, the learner's width (the output channels
            for `"basic"`, `filters * expansion` for `"bottleneck"`).
        block_type: `"basic"` or `"bottleneck"`.
        strides: int or tuple of 2 ints, the block's stride.
        expansion: positive integer, output expansion of the bottleneck.
        data_format: `"channels_last"`, `"channels_first"` or `None`
            (`keras.config.image_data_format()`).
        kernel_initializer, kernel_regularizer, kernel_constraint: of the
            learner's convolutions and of the projection (He-normal).
        batch_norm_momentum, batch_norm_epsilon: of the batch normalizations.
        use_bias: whether the learner's convolutions and the projection have
            biases (`False`: batch normalization follows each;
            `keras.applications`' ResNets use `True`).
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

    >>> block = kr.layers.ResidualConvBlock(16, strides=2)
    >>> tuple(block(np.zeros((2, 8, 8, 3))).shape)
    (2, 4, 4, 16)
    >>> block.projection is not None
    True
    """

    def build_connection(self, input_shape):
        channels = self._input_channels(input_shape)
        if self.strides == (1, 1) and channels == self.output_filters:
            self.projection = None
            self.projection_norm = None
            return
        self.projection = keras.layers.Conv2D(
            self.output_filters,
            1,
            strides=self.strides,
            use_bias=self.use_bias,
            data_format=self.data_format,
            kernel_initializer=check.fresh_initializer(self.kernel_initializer),
            kernel_regularizer=self.kernel_regularizer,
            kernel_constraint=self.kernel_constraint,
            name="projection",
            dtype=self.dtype_policy,
        )
        self.projection_norm = keras.layers.BatchNormalization(
            axis=self.channel_axis,
            momentum=self.batch_norm_momentum,
            epsilon=self.batch_norm_epsilon,
            name="projection_bn",
            dtype=self.dtype_policy,
        )
        self.projection.build(tuple(input_shape))
        self.projection_norm.build(self.projection.compute_output_shape(tuple(input_shape)))

    def connection(self, inputs, training=None, collect=None):
        if self.projection is None:
            return inputs
        return self.projection_norm(self.projection(inputs), training=training)
