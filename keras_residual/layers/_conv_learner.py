"""The learner shared by PNNHConvBlock, ResidualConvBlock and PlainConvBlock.

`ConvLearner` is ResNet's residual branch F(x): basic (3x3-BN-ReLU-3x3-BN)
or bottleneck (1x1-BN-ReLU-3x3-BN-ReLU-1x1-BN, stride on the 3x3 as in
ResNet v1.5 by default, or on the first 1x1 as in ResNet v1 and
`keras.applications.ResNet50` with `stride_in_first_conv=True`).
`ConvBlock` is the base of the three public blocks: it owns
the learner, the common arguments and config, and computes

    out = relu(learner(x) + connection(x))

where each block defines `connection` (the coder, ResNet's shortcut, or
nothing), so the three blocks differ in the connection alone.
"""

import keras
from keras import constraints
from keras import initializers
from keras import ops
from keras import regularizers

from keras_residual import _validation as check

BLOCK_TYPES = ("basic", "bottleneck")


def output_spatial(size, stride):
    """Spatial size after a "same"-padded convolution of stride `stride`."""
    return None if size is None else -(-size // stride)


class ConvLearner(keras.layers.Layer):
    """ResNet's residual branch F(x), without the shortcut or final ReLU.

    Built by the blocks from their own arguments (not a public layer): its
    weights are saved with the block, its config is the block's.
    """

    def __init__(
        self,
        filters,
        block_type,
        strides,
        expansion,
        data_format,
        kernel_initializer,
        kernel_regularizer,
        kernel_constraint,
        batch_norm_momentum,
        batch_norm_epsilon,
        use_bias=False,
        stride_in_first_conv=False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        conv_kwargs = dict(
            padding="same",
            use_bias=use_bias,
            data_format=data_format,
            kernel_regularizer=kernel_regularizer,
            kernel_constraint=kernel_constraint,
            dtype=self.dtype_policy,
        )
        if block_type == "basic":
            specs = [(filters, 3, strides), (filters, 3, 1)]
        else:
            first, middle = (strides, 1) if stride_in_first_conv else (1, strides)
            specs = [(filters, 1, first), (filters, 3, middle), (filters * expansion, 1, 1)]
        axis = -1 if data_format == "channels_last" else 1
        self.convs = [
            keras.layers.Conv2D(
                f,
                k,
                strides=s,
                kernel_initializer=check.fresh_initializer(kernel_initializer),
                name=f"conv_{i + 1}",
                **conv_kwargs,
            )
            for i, (f, k, s) in enumerate(specs)
        ]
        self.norms = [
            keras.layers.BatchNormalization(
                axis=axis,
                momentum=batch_norm_momentum,
                epsilon=batch_norm_epsilon,
                name=f"bn_{i + 1}",
                dtype=self.dtype_policy,
            )
            for i in range(len(specs))
        ]

    def build(self, input_shape):
        shape = tuple(input_shape)
        for conv, norm in zip(self.convs, self.norms):
            conv.build(shape)
            shape = conv.compute_output_shape(shape)
            norm.build(shape)

    def forward(self, inputs, training=None, collect=None):
        """F(x); with `collect` a dict, records the inner ReLUs' pre-activations."""
        h = inputs
        last = len(self.convs) - 1
        for i, (conv, norm) in enumerate(zip(self.convs, self.norms)):
            h = norm(conv(h), training=training)
            if i < last:
                if collect is not None:
                    collect[f"learner_relu_{i + 1}"] = h
                h = ops.relu(h)
        return h

    def call(self, inputs, training=None):
        return self.forward(inputs, training=training)

    def compute_output_shape(self, input_shape):
        shape = tuple(input_shape)
        for conv in self.convs:
            shape = conv.compute_output_shape(shape)
        return shape


class ConvBlock(keras.layers.Layer):
    """Base of the PNNH, residual and plain convolutional blocks.

    Subclasses override `build_connection(input_shape)` (create and build
    the connection's layers) and `connection(inputs, training, collect)`
    (return the tensor added to the learner's output, or `None`).
    """

    def __init__(
        self,
        filters,
        block_type="basic",
        strides=1,
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
        super().__init__(**kwargs)
        self.filters = check.positive_int("filters", filters)
        self.block_type = check.one_of("block_type", block_type, BLOCK_TYPES)
        self.strides = check.int_pair("strides", strides)
        self.expansion = check.positive_int("expansion", expansion)
        self.data_format = check.data_format(data_format)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.kernel_constraint = constraints.get(kernel_constraint)
        self.batch_norm_momentum = check.real(
            "batch_norm_momentum", batch_norm_momentum, minimum=0, maximum=1, max_open=True
        )
        self.batch_norm_epsilon = check.positive_real("batch_norm_epsilon", batch_norm_epsilon)
        self.use_bias = check.boolean("use_bias", use_bias)
        self.stride_in_first_conv = check.boolean("stride_in_first_conv", stride_in_first_conv)
        self.input_channels = None
        self.learner = ConvLearner(
            self.filters,
            self.block_type,
            self.strides,
            self.expansion,
            self.data_format,
            self.kernel_initializer,
            self.kernel_regularizer,
            self.kernel_constraint,
            self.batch_norm_momentum,
            self.batch_norm_epsilon,
            use_bias=self.use_bias,
            stride_in_first_conv=self.stride_in_first_conv,
            name="learner",
            dtype=self.dtype_policy,
        )

    @property
    def output_filters(self):
        """Channels of the block's output (`filters * expansion` for bottleneck)."""
        if self.block_type == "bottleneck":
            return self.filters * self.expansion
        return self.filters

    @property
    def channel_axis(self):
        return -1 if self.data_format == "channels_last" else 1

    def _input_channels(self, input_shape):
        channels = input_shape[self.channel_axis]
        if len(input_shape) != 4 or channels is None:
            raise ValueError(
                f"{self.__class__.__name__} `{self.name}` takes images of rank 4 "
                f"with a defined channel dimension ({self.data_format}); received "
                f"input_shape={tuple(input_shape)}."
            )
        return int(channels)

    def build(self, input_shape):
        self.input_channels = self._input_channels(input_shape)
        self.learner.build(input_shape)
        self.build_connection(input_shape)

    def _inputs(self, inputs):
        """The inputs, checked against the built block, in the compute dtype.

        Integer and bool images are computed as floats, as `keras.layers.Dense`
        computes integer inputs (`keras.layers.Conv2D` crashed on them on
        tensorflow and torch).
        """
        inputs = check.floating(inputs, self.compute_dtype)
        inputs = ops.cast(inputs, self.compute_dtype)  # a tensor, as Layer.__call__ gives
        if not self.built:
            self.build(tuple(inputs.shape))
        shape = tuple(inputs.shape)
        channels = check.static_dim(shape[self.channel_axis]) if len(shape) == 4 else None
        if len(shape) != 4 or channels not in (None, self.input_channels):
            raise ValueError(
                f"{self.__class__.__name__} `{self.name}` was built for images of "
                f"{self.input_channels} channels ({self.data_format}); received "
                f"inputs of shape {shape}."
            )
        return inputs

    def build_connection(self, input_shape):
        pass

    def connection(self, inputs, training=None, collect=None):
        return None

    def _forward(self, inputs, training=None, collect=None):
        z = self.learner.forward(inputs, training=training, collect=collect)
        skip = self.connection(inputs, training=training, collect=collect)
        if skip is not None:
            z = z + ops.cast(skip, z.dtype)
        if collect is not None:
            collect["output_relu"] = z
        return ops.relu(z)

    def call(self, inputs, training=None):
        inputs = self._inputs(inputs)
        if check.empty_batch(inputs):
            # As Keras layers: an empty output. (Tf's convolution returns an
            # empty batch unchanged, and batch normalization would take the
            # NaN mean of no sample into its moving statistics.)
            return ops.zeros(self.compute_output_shape(inputs.shape), self.compute_dtype)
        return self._forward(inputs, training=training)

    def relu_pre_activations(self, inputs, training=False):
        """The pre-activation of every ReLU inside the block, by name.

        What `kr.dynamics.relu_survival` measures. Names: `learner_relu_<i>`
        (inside the learner), `coder_relu` (PNNH blocks), `output_relu` (the
        block's output ReLU, whose input is `learner(x) + connection(x)`).

        Args:
            inputs: the block's inputs.
            training: whether batch normalization uses batch statistics.

        Returns:
            A dict, name -> pre-activation tensor, in the order of the forward
            pass.

        Raises:
            ValueError: for an empty batch (there is nothing to measure) or
                inputs that do not fit the block.
        """
        inputs = self._inputs(inputs)
        if check.empty_batch(inputs):
            raise ValueError(
                f"`relu_pre_activations` of `{self.name}` needs a non-empty batch; "
                f"received inputs of shape {tuple(inputs.shape)}."
            )
        collect = {}
        self._forward(inputs, training=training, collect=collect)
        return collect

    def compute_output_shape(self, input_shape):
        shape = list(input_shape)
        spatial = (1, 2) if self.data_format == "channels_last" else (2, 3)
        for i, s in zip(spatial, self.strides):
            shape[i] = output_spatial(shape[i], s)
        shape[self.channel_axis] = self.output_filters
        return tuple(shape)

    def get_config(self):
        config = {
            "filters": self.filters,
            "block_type": self.block_type,
            "strides": self.strides,
            "expansion": self.expansion,
            "data_format": self.data_format,
            "kernel_initializer": initializers.serialize(self.kernel_initializer),
            "kernel_regularizer": regularizers.serialize(self.kernel_regularizer),
            "kernel_constraint": constraints.serialize(self.kernel_constraint),
            "batch_norm_momentum": self.batch_norm_momentum,
            "batch_norm_epsilon": self.batch_norm_epsilon,
            "use_bias": self.use_bias,
            "stride_in_first_conv": self.stride_in_first_conv,
        }
        return {**super().get_config(), **config}
