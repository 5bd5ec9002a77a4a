"""PNNHCoder: the weight-shared autoencoder path of a PNNH block."""

import numpy as np

import keras
from keras import constraints
from keras import initializers
from keras import ops
from keras import regularizers

from keras_residual import _validation as check


@keras.saving.register_keras_serializable(package="keras_residual")
class PNNHCoder(keras.layers.Layer):
    """Coder of the Plain Neural Net Hypothesis: a small autoencoder path.

    Computes, with `C_B = max(1, round(bottleneck_ratio * filters))`:

        c(x) = D(relu(E(x)))       E: C_in -> C_B,  D: C_B -> filters

    E and D are 1x1 convolutions for images (rank-4 inputs, `data_format`
    honoured; E carries the stride) and dense layers for tokens
    `(batch, tokens, C_in)` or vectors `(batch, C_in)`. There is no identity
    shortcut: the coder must *learn* to carry its input. A PNNH block adds it
    to its learner, `out = relu(learner(x) + c(x))`.

    **Weight sharing.** One instance may be passed to several blocks (every
    block of a stage whose shapes agree; every block of a ViT). It is built
    by the first block that calls it, its weights exist once, and
    `model.count_params()` counts them once. Sharing survives a `.keras`
    save/load (Keras' object-sharing scope serializes the coder once and
    hands the same instance to every block); `get_config()`/`from_config()`
    outside `model.save` gives each block its own copy.

    **Pre-training.** `pretrain()` trains the coder to reconstruct samples of
    the rectified normal distribution `relu(N(0, 1))`, the distribution of
    post-ReLU activations. A pre-trained coder approximately reproduces its
    non-negative input and so carries the input's positive mean into the
    block's pre-activation (as a residual connection does); a randomly
    initialised coder has zero-mean output.

    Args:
        filters: positive integer, output channels (must equal the block's).
        bottleneck_ratio: float in (0, 1], `C_B / filters`.
        strides: int or tuple of 2 ints, the stride of E on images (must be
            1 for tokens).
        data_format: `"channels_last"`, `"channels_first"` or `None`
            (`keras.config.image_data_format()`); images only.
        use_bias: whether E and D have biases.
        kernel_initializer, bias_initializer: initializers of E and D.
        kernel_regularizer, bias_regularizer: regularizers of E and D.
        kernel_constraint, bias_constraint: constraints of E and D.

    Call arguments:
        inputs: images `(batch, H, W, C_in)` (or channels first), tokens
            `(batch, T, C_in)` or vectors `(batch, C_in)`. Integer and bool
            inputs are computed in the compute dtype, as by
            `keras.layers.Dense`.

    Returns:
        `c(x)`: images `(batch, ceil(H / s), ceil(W / s), filters)`, tokens
        `(batch, T, filters)`.

    Example:

    >>> coder = kr.layers.PNNHCoder(16)
    >>> losses = coder.pretrain(steps=50, batch_size=64, seed=0)
    >>> len(losses), losses[-1] < losses[0]
    (50, True)
    >>> blocks = [kr.layers.PNNHConvBlock(16, coder=coder) for _ in range(3)]
    >>> x = keras.Input((8, 8, 16))
    >>> y = x
    >>> for block in blocks:
    ...     y = block(y)
    >>> model = keras.Model(x, y)
    >>> coder.count_params()  # E: 16 -> 8, D: 8 -> 16
    280
    >>> own = blocks[0].count_params() - coder.count_params()  # a block's learner
    >>> model.count_params() == 3 * own + 280  # the coder counts once
    True
    """

    def __init__(
        self,
        filters,
        bottleneck_ratio=0.5,
        strides=1,
        data_format=None,
        use_bias=True,
        kernel_initializer="he_normal",
        bias_initializer="zeros",
        kernel_regularizer=None,
        bias_regularizer=None,
        kernel_constraint=None,
        bias_constraint=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.filters = check.positive_int("filters", filters)
        self.bottleneck_ratio = check.real(
            "bottleneck_ratio", bottleneck_ratio, minimum=0, maximum=1, min_open=True
        )
        self.strides = check.int_pair("strides", strides)
        self.data_format = check.data_format(data_format)
        self.use_bias = check.boolean("use_bias", use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        self.kernel_constraint = constraints.get(kernel_constraint)
        self.bias_constraint = constraints.get(bias_constraint)
        self.bottleneck_filters = max(1, int(round(self.bottleneck_ratio * self.filters)))
        self.input_channels = None

    def _channel_axis(self, rank):
        if rank == 4 and self.data_format == "channels_first":
            return 1
        return rank - 1

    def _check_rank(self, input_shape):
        """The channels of inputs of this shape, after checking its rank and
        that the stride has images to act on."""
        rank = len(input_shape)
        if rank not in (2, 3, 4):
            raise ValueError(
                f"{self.__class__.__name__} `{self.name}` takes inputs of rank 2 "
                "(vectors), 3 (tokens) or 4 (images); received input_shape="
                f"{tuple(input_shape)}."
            )
        if rank < 4 and self.strides != (1, 1):
            raise ValueError(
                f"Argument `strides` must be 1 for token inputs; received "
                f"strides={self.strides} with input_shape={tuple(input_shape)}."
            )
        return input_shape[self._channel_axis(rank)]

    def _inputs(self, x):
        """`x` in the coder's compute dtype.

        Integer and bool inputs are cast as `keras.layers.Dense` computes
        them; floating inputs get the cast `Layer.__call__` gives them, so
        `encode`, `decode` and `relu_pre_activations` (called directly)
        compute as `call` does.
        """
        x = check.floating(x, self.compute_dtype)
        x = ops.cast(x, self.compute_dtype)  # a tensor, as Layer.__call__ gives
        return x

    def _check_channels(self, x, channels, expected):
        """Refuse `x` unless its channel dimension is `channels`."""
        got = check.static_dim(x.shape[self._channel_axis(len(x.shape))])
        if got is not None and got != channels:
            raise ValueError(
                f"{self.__class__.__name__} `{self.name}` {expected}; received "
                f"inputs of shape {tuple(x.shape)} ({self.data_format})."
            )

    def build(self, input_shape):
        channels = self._check_rank(input_shape)
        if channels is None:
            raise ValueError(
                f"The channel dimension of the inputs of `{self.name}` must be "
                f"defined; received input_shape={tuple(input_shape)}."
            )
        self.input_channels = int(channels)
        self.encoder_kernel = self.add_weight(
            shape=(self.input_channels, self.bottleneck_filters),
            name="encoder_kernel",
            initializer=check.fresh_initializer(self.kernel_initializer),
            regularizer=self.kernel_regularizer,
            constraint=self.kernel_constraint,
        )
        self.decoder_kernel = self.add_weight(
            shape=(self.bottleneck_filters, self.filters),
            name="decoder_kernel",
            initializer=check.fresh_initializer(self.kernel_initializer),
            regularizer=self.kernel_regularizer,
            constraint=self.kernel_constraint,
        )
        if self.use_bias:
            self.encoder_bias = self.add_weight(
                shape=(self.bottleneck_filters,),
                name="encoder_bias",
                initializer=check.fresh_initializer(self.bias_initializer),
                regularizer=self.bias_regularizer,
                constraint=self.bias_constraint,
            )
            self.decoder_bias = self.add_weight(
                shape=(self.filters,),
                name="decoder_bias",
                initializer=check.fresh_initializer(self.bias_initializer),
                regularizer=self.bias_regularizer,
                constraint=self.bias_constraint,
            )
        else:
            self.encoder_bias = None
            self.decoder_bias = None

    def _pointwise(self, x, kernel, bias, strides):
        """A 1x1 convolution (images) or a dense map (tokens, vectors)."""
        rank = len(x.shape)
        channels_first = rank == 4 and self.data_format == "channels_first"
        if check.empty_batch(x):
            # As keras.layers.Dense: an empty batch gives an empty output (tf's
            # convolution mishandles one).
            shape = list(x.shape)
            shape[self._channel_axis(rank)] = int(kernel.shape[1])
            if rank == 4:
                spatial = (2, 3) if channels_first else (1, 2)
                for i, s in zip(spatial, strides):
                    shape[i] = -(-shape[i] // s)
            return ops.zeros(tuple(shape), x.dtype)
        kernel = ops.cast(kernel, x.dtype)
        if channels_first:
            y = ops.conv(
                x,
                ops.reshape(kernel, (1, 1) + tuple(kernel.shape)),
                strides=strides,
                padding="valid",
                data_format="channels_first",
            )
        else:
            if rank == 4 and strides != (1, 1):
                x = x[:, :: strides[0], :: strides[1], :]
            y = ops.matmul(x, kernel)
        if bias is not None:
            bias = ops.cast(bias, x.dtype)
            if channels_first:
                bias = ops.reshape(bias, (-1, 1, 1))
            y = y + bias
        return y

    def encode(self, inputs):
        """E(x): the pre-activation of the coder's ReLU (strided for images)."""
        inputs = self._inputs(inputs)
        if not self.built:
            self.build(tuple(inputs.shape))
        self._check_rank(inputs.shape)
        self._check_channels(
            inputs, self.input_channels, f"was built for {self.input_channels} input channels"
        )
        return self._pointwise(inputs, self.encoder_kernel, self.encoder_bias, self.strides)

    def decode(self, hidden):
        """D(h): the coder's output from its (rectified) code."""
        hidden = self._inputs(hidden)
        if len(hidden.shape) not in (2, 3, 4):
            raise ValueError(
                f"{self.__class__.__name__} `{self.name}` decodes codes of rank 2, 3 "
                f"or 4; received a code of shape {tuple(hidden.shape)}."
            )
        self._check_channels(
            hidden,
            self.bottleneck_filters,
            f"decodes codes of {self.bottleneck_filters} channels (its bottleneck)",
        )
        return self._pointwise(hidden, self.decoder_kernel, self.decoder_bias, (1, 1))

    def call(self, inputs):
        return self.decode(ops.relu(self.encode(inputs)))

    def relu_pre_activations(self, inputs, training=False):
        """The pre-activation of every ReLU of the layer, by name.

        Args:
            inputs: as in `call`.
            training: unused (the coder behaves alike in both modes).

        Returns:
            `{"coder_relu": E(x)}`.

        Raises:
            ValueError: for an empty batch (there is nothing to measure).
        """
        inputs = self._inputs(inputs)
        if check.empty_batch(inputs):
            raise ValueError(
                f"`relu_pre_activations` of `{self.name}` needs a non-empty batch; "
                f"received inputs of shape {tuple(inputs.shape)}."
            )
        return {"coder_relu": self.encode(inputs)}

    def compute_output_shape(self, input_shape):
        input_shape = list(input_shape)
        rank = len(input_shape)
        axis = self._channel_axis(rank)
        input_shape[axis] = self.filters
        if rank == 4:
            spatial = (2, 3) if self.data_format == "channels_first" else (1, 2)
            for i, s in zip(spatial, self.strides):
                if input_shape[i] is not None:
                    input_shape[i] = -(-input_shape[i] // s)
        return tuple(input_shape)

    def pretrain(
        self,
        steps=500,
        batch_size=256,
        learning_rate=1e-2,
        trainable_after=True,
        seed=None,
    ):
        """Pre-train on the rectified-normal reconstruction task.

        Minimises `mean((c(u) - u)^2)` over fresh samples
        `u ~ relu(N(0, I))` of shape `(batch_size, filters)` each step, with
        Adam (the defaults bring an 8- or 16-channel coder from an MSE of 1-2
        to about 0.2 in a few seconds; predicting the mean scores 0.34). Because
        E and D act per position, this is the same as
        pre-training on images or tokens of that distribution. Reconstruction
        needs as many input channels as output channels: an unbuilt coder is
        built with `filters` input channels.

        Args:
            steps: positive integer, optimisation steps.
            batch_size: positive integer, samples per step.
            learning_rate: positive float, Adam's learning rate.
            trainable_after: whether the coder stays trainable afterwards
                (`False` freezes it: `coder.trainable = False`).
            seed: seed of the samples (NumPy), or `None`.

        Returns:
            The reconstruction loss (MSE) of every step, a list of floats.

        Raises:
            ValueError: for invalid arguments, or when the coder was built
                with input channels other than `filters`.
        """
        steps = check.positive_int("steps", steps)
        batch_size = check.positive_int("batch_size", batch_size)
        learning_rate = check.positive_real("learning_rate", learning_rate)
        trainable_after = check.boolean("trainable_after", trainable_after)
        seed = check.seed("seed", seed)
        if self.built and self.input_channels != self.filters:
            raise ValueError(
                f"`pretrain` reconstructs the coder's input, so it needs "
                f"input channels == filters; coder `{self.name}` was built "
                f"with {self.input_channels} input channels and "
                f"filters={self.filters}."
            )
        inputs = keras.Input((self.filters,))
        model = keras.Model(inputs, self(inputs), name=f"{self.name}_pretraining")
        self.trainable = True
        model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss="mse")
        rng = np.random.default_rng(seed)
        history = []
        for _ in range(steps):
            u = np.maximum(rng.standard_normal((batch_size, self.filters)), 0.0).astype("float32")
            loss = model.train_on_batch(u, u)
            history.append(float(np.asarray(loss).reshape(-1)[0]))
        self.trainable = trainable_after
        return history

    def get_config(self):
        config = {
            "filters": self.filters,
            "bottleneck_ratio": self.bottleneck_ratio,
            "strides": self.strides,
            "data_format": self.data_format,
            "use_bias": self.use_bias,
            "kernel_initializer": initializers.serialize(self.kernel_initializer),
            "bias_initializer": initializers.serialize(self.bias_initializer),
            "kernel_regularizer": regularizers.serialize(self.kernel_regularizer),
            "bias_regularizer": regularizers.serialize(self.bias_regularizer),
            "kernel_constraint": constraints.serialize(self.kernel_constraint),
            "bias_constraint": constraints.serialize(self.bias_constraint),
        }
        return {**super().get_config(), **config}
