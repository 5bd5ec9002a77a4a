"""PNNHConvBlock: a plain convolutional block trained through a coder path."""

import keras
from keras import ops

from keras_residual import _validation as check
from keras_residual.layers._coder_sharing import build_coder
from keras_residual.layers._coder_sharing import check_coder
from keras_residual.layers._coder_sharing import coder_from_config
from keras_residual.layers._coder_sharing import serialize_coder
from keras_residual.layers._conv_learner import ConvBlock
from keras_residual.layers.pnnh_coder import PNNHCoder


@keras.saving.register_keras_serializable(package="keras_residual")
class PNNHConvBlock(ConvBlock):
    """Block of the Plain Neural Net Hypothesis: `relu(learner(x) + c(x))`.

    The learner is ResNet's (basic 3x3-BN-ReLU-3x3-BN, or bottleneck
    1x1-BN-ReLU-3x3-BN-ReLU-1x1-BN with the stride on the 3x3, or on the
    first 1x1 with `stride_in_first_conv=True`); beside it
    runs a coder `c(x) = D(relu(E(x)))` (`kr.layers.PNNHCoder`), a small
    autoencoder with 1x1 convolutions. There is no identity shortcut
    anywhere: the network is plain, and the coder learns to carry the input.
    `PlainConvBlock` and `ResidualConvBlock` build the same learner with no
    connection and with ResNet's shortcut.

    Args:
        filters: positive integer, the learner's width (the output channels
            for `"basic"`, `filters * expansion` for `"bottleneck"`).
        block_type: `"basic"` or `"bottleneck"`.
        strides: int or tuple of 2 ints, the block's stride (the coder's E
            carries it).
        coder: a `PNNHCoder` to use, typically shared by the blocks of a
            stage (it must output `output_filters` channels with the block's
            strides and data format, and is checked against the input
            channels at build), or `None` for a coder of the block's own.
        bottleneck_ratio: float in (0, 1], the own coder's `C_B / C_out`
            (ignored when `coder` is given).
        expansion: positive integer, output expansion of the bottleneck.
        data_format: `"channels_last"`, `"channels_first"` or `None`
            (`keras.config.image_data_format()`).
        kernel_initializer, kernel_regularizer, kernel_constraint: of the
            learner's convolutions (He-normal by default) and of the own
            coder.
        batch_norm_momentum, batch_norm_epsilon: of the learner's batch
            normalizations.
        use_bias: whether the learner's convolutions have biases (`False`:
            batch normalization follows each; `keras.applications`' ResNets
            use `True`). The coder keeps its own biases.
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

    >>> coder = kr.layers.PNNHCoder(16)          # one coder for the stage
    >>> _ = coder.pretrain(steps=50, seed=0)     # optional: relu(N(0,1)) task
    >>> x = keras.Input((8, 8, 16))
    >>> y = kr.layers.PNNHConvBlock(16, coder=coder)(x)
    >>> y = kr.layers.PNNHConvBlock(16, coder=coder)(y)
    >>> down = kr.layers.PNNHConvBlock(32, strides=2)  # its own coder
    >>> model = keras.Model(x, down(y))
    >>> model.output_shape
    (None, 4, 4, 32)
    """

    def __init__(
        self,
        filters,
        block_type="basic",
        strides=1,
        coder=None,
        bottleneck_ratio=0.5,
        expansion=4,
        data_format=None,
        kernel_initializer="he_normal",
        kernel_regularizer=None,
        kernel_constraint=None,
        batch_norm_momentum=0.9,
        batch_norm_epsilon=1e-5,
        use_bias=False,
        stride_in_first_conv=False,
        **kwargs,
    ):
        super().__init__(
            filters,
            block_type=block_type,
            strides=strides,
            expansion=expansion,
            data_format=data_format,
            kernel_initializer=kernel_initializer,
            kernel_regularizer=kernel_regularizer,
            kernel_constraint=kernel_constraint,
            batch_norm_momentum=batch_norm_momentum,
            batch_norm_epsilon=batch_norm_epsilon,
            use_bias=use_bias,
            stride_in_first_conv=stride_in_first_conv,
            **kwargs,
        )
        self.bottleneck_ratio = check.real(
            "bottleneck_ratio", bottleneck_ratio, minimum=0, maximum=1, min_open=True
        )
        if coder is None:
            coder = PNNHCoder(
                self.output_filters,
                bottleneck_ratio=self.bottleneck_ratio,
                strides=self.strides,
                data_format=self.data_format,
                kernel_initializer=self.kernel_initializer,
                kernel_regularizer=self.kernel_regularizer,
                kernel_constraint=self.kernel_constraint,
                name=f"{self.name}_coder",
                dtype=self.dtype_policy,
            )
        self.coder = check_coder(coder, self.output_filters, self.strides, self.data_format)

    def build_connection(self, input_shape):
        build_coder(self, self.coder, input_shape, self._input_channels(input_shape))

    def connection(self, inputs, training=None, collect=None):
        if collect is None:
            return self.coder(inputs)
        code = self.coder.encode(inputs)
        collect["coder_relu"] = code
        return self.coder.decode(ops.relu(code))

    def get_config(self):
        config = {
            "coder": serialize_coder(self.coder),
            "bottleneck_ratio": self.bottleneck_ratio,
        }
        return {**super().get_config(), **config}

    @classmethod
    def from_config(cls, config):
        coder, config = coder_from_config(config)
        return cls(coder=coder, **config)
