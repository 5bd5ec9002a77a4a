"""PNNHTransformerBlock: a pre-LN ViT encoder block with a choice of connections."""

import keras
from keras import activations
from keras import initializers
from keras import ops

from keras_residual import _activations
from keras_residual import _validation as check
from keras_residual.layers._coder_sharing import build_coder
from keras_residual.layers._coder_sharing import check_coder
from keras_residual.layers._coder_sharing import coder_from_config
from keras_residual.layers._coder_sharing import serialize_coder
from keras_residual.layers.pnnh_coder import PNNHCoder

CONNECTIONS = ("residual", "plain", "pnnh")


@keras.saving.register_keras_serializable(package="keras_residual")
class PNNHTransformerBlock(keras.layers.Layer):
    """Pre-LN ViT encoder block whose sub-blocks use a residual, plain or PNNH connection.

    The block is keras-hub's ViT encoder block,

        y   = connect_attention(x, MHA(LN_1(x)))
        out = connect_mlp(y, MLP(LN_2(y)))         MLP = Dense-act-Dense

    where each sub-block's connection of `f` is one of

        "residual":  x + f(LN x)        (the usual ViT block)
        "plain":     f(LN x)            (no connection)
        "pnnh":      f(LN x) + c(x)     (c the dense coder D(relu(E(x))))

    The paper (PNNH) replaces the MLP path's residual with the coder
    (`mlp_connection="pnnh"`, the default); using it on the attention path
    as well is an open question the option lets users study. When both
    paths are `"pnnh"` they use the same coder. Pass one `PNNHCoder` to every
    block of a ViT to share it (its parameters count once).
    `mlp_connection="residual", attention_connection="residual"` is the
    residual twin and `"plain", "plain"` the plain twin.

    Args:
        num_heads: positive integer, attention heads (dividing
            `hidden_dim`).
        hidden_dim: positive integer, the token width (input and output).
        mlp_dim: positive integer, the MLP's hidden width.
        coder: a `PNNHCoder(hidden_dim)` to use (typically shared), or
            `None` for a coder of the block's own when a connection is
            `"pnnh"`. Giving one when no connection is `"pnnh"` is an error.
        mlp_connection: `"pnnh"` (default), `"residual"` or `"plain"`.
        attention_connection: `"residual"` (default), `"plain"` or
            `"pnnh"`.
        dropout: float in [0, 1), dropout after attention and in the MLP.
        attention_dropout: float in [0, 1), dropout of attention weights.
        layer_norm_epsilon: positive float, of both layer normalizations.
        bottleneck_ratio: float in (0, 1], the own coder's `C_B / hidden_dim`
            (ignored when `coder` is given).
        activation: the MLP's activation (`"gelu"` as in ViT; with `"relu"`
            its pre-activation is reported to `kr.dynamics.relu_survival`).
        kernel_initializer: of the attention and MLP kernels.

    Call arguments:
        inputs: tokens `(batch, tokens, hidden_dim)`; integer and bool tokens
            are computed in the compute dtype.
        attention_mask: optional mask for `MultiHeadAttention`.
        training: whether dropout is active.

    Returns:
        Tokens `(batch, tokens, hidden_dim)`.

    Example:

    >>> coder = kr.layers.PNNHCoder(64)
    >>> x = keras.Input((16, 64))
    >>> y = x
    >>> for _ in range(4):
    ...     y = kr.layers.PNNHTransformerBlock(4, 64, 128, coder=coder)(y)
    >>> keras.Model(x, y).output_shape
    (None, 16, 64)
    """

    def __init__(
        self,
        num_heads,
        hidden_dim,
        mlp_dim,
        coder=None,
        mlp_connection="pnnh",
        attention_connection="residual",
        dropout=0.0,
        attention_dropout=0.0,
        layer_norm_epsilon=1e-6,
        bottleneck_ratio=0.5,
        activation="gelu",
        kernel_initializer="glorot_uniform",
        **kwargs,
    ):
        super().__init__(**kwargs)
        # === Arguments ===
        self.num_heads = check.positive_int("num_heads", num_heads)
        self.hidden_dim = check.positive_int("hidden_dim", hidden_dim)
        if self.hidden_dim % self.num_heads:
            raise ValueError(
                f"Argument `hidden_dim` must be divisible by `num_heads`; received "
                f"hidden_dim={hidden_dim!r}, num_heads={num_heads!r}."
            )
        self.mlp_dim = check.positive_int("mlp_dim", mlp_dim)
        self.mlp_connection = check.one_of("mlp_connection", mlp_connection, CONNECTIONS)
        self.attention_connection = check.one_of(
            "attention_connection", attention_connection, CONNECTIONS
        )
        self.dropout = check.rate("dropout", dropout)
        self.attention_dropout = check.rate("attention_dropout", attention_dropout)
        self.layer_norm_epsilon = check.positive_real("layer_norm_epsilon", layer_norm_epsilon)
        self.bottleneck_ratio = check.real(
            "bottleneck_ratio", bottleneck_ratio, minimum=0, maximum=1, min_open=True
        )
        self.activation = activations.get(activation)
        self.kernel_initializer = initializers.get(kernel_initializer)

        # === Layers ===
        uses_coder = "pnnh" in (self.mlp_connection, self.attention_connection)
        if coder is not None and not uses_coder:
            raise ValueError(
                "Argument `coder` is used only by a 'pnnh' connection; received "
                f"coder={coder.__class__.__name__} with mlp_connection="
                f"{self.mlp_connection!r} and attention_connection="
                f"{self.attention_connection!r}. Pass coder=None or make a "
                "connection 'pnnh'."
            )
        if coder is not None:
            check_coder(coder, self.hidden_dim)
        self.attention_norm = keras.layers.LayerNormalization(
            epsilon=self.layer_norm_epsilon, name="attention_norm", dtype=self.dtype_policy
        )
        self.attention = keras.layers.MultiHeadAttention(
            num_heads=self.num_heads,
            key_dim=self.hidden_dim // self.num_heads,
            dropout=self.attention_dropout,
            kernel_initializer=check.fresh_initializer(self.kernel_initializer),
            name="attention",
            dtype=self.dtype_policy,
        )
        self.attention_output_dropout = keras.layers.Dropout(
            self.dropout, name="attention_output_dropout", dtype=self.dtype_policy
        )
        self.mlp_norm = keras.layers.LayerNormalization(
            epsilon=self.layer_norm_epsilon, name="mlp_norm", dtype=self.dtype_policy
        )
        self.mlp_dense_1 = keras.layers.Dense(
            self.mlp_dim,
            kernel_initializer=check.fresh_initializer(self.kernel_initializer),
            bias_initializer=keras.initializers.RandomNormal(stddev=1e-6),
            name="mlp_dense_1",
            dtype=self.dtype_policy,
        )
        self.mlp_dense_2 = keras.layers.Dense(
            self.hidden_dim,
            kernel_initializer=check.fresh_initializer(self.kernel_initializer),
            bias_initializer=keras.initializers.RandomNormal(stddev=1e-6),
            name="mlp_dense_2",
            dtype=self.dtype_policy,
        )
        self.mlp_dropout_1 = keras.layers.Dropout(
            self.dropout, name="mlp_dropout_1", dtype=self.dtype_policy
        )
        self.mlp_dropout_2 = keras.layers.Dropout(
            self.dropout, name="mlp_dropout_2", dtype=self.dtype_policy
        )
        # The coder comes last, so the twins' weights are a prefix of these.
        if coder is None and uses_coder:
            coder = PNNHCoder(
                self.hidden_dim,
                bottleneck_ratio=self.bottleneck_ratio,
                name=f"{self.name}_coder",
                dtype=self.dtype_policy,
            )
        self.coder = coder

    def _check_shape(self, input_shape, allowed_widths):
        width = check.static_dim(input_shape[-1]) if len(input_shape) == 3 else None
        if len(input_shape) != 3 or width not in allowed_widths:
            raise ValueError(
                f"{self.__class__.__name__} `{self.name}` takes tokens of shape "
                f"(batch, tokens, hidden_dim={self.hidden_dim}); received "
                f"input_shape={tuple(input_shape)}."
            )

    def _inputs(self, inputs):
        """The tokens, checked, in the compute dtype (integer and bool tokens are
        computed as floats, as `keras.layers.Dense` computes them)."""
        inputs = check.floating(inputs, self.compute_dtype)
        inputs = ops.cast(inputs, self.compute_dtype)  # a tensor, as Layer.__call__ gives
        self._check_shape(tuple(inputs.shape), (None, self.hidden_dim))
        return inputs

    def build(self, input_shape):
        self._check_shape(input_shape, (self.hidden_dim,))
        shape = tuple(input_shape)
        self.attention_norm.build(shape)
        self.attention.build(shape, shape)
        self.mlp_norm.build(shape)
        self.mlp_dense_1.build(shape)
        self.mlp_dense_2.build(shape[:-1] + (self.mlp_dim,))
        if self.coder is not None:
            build_coder(self, self.coder, shape, self.hidden_dim)

    def _connect(self, connection, inputs, branch, collect, prefix):
        if connection == "residual":
            return inputs + branch
        if connection == "plain":
            return branch
        if collect is None:
            return branch + ops.cast(self.coder(inputs), branch.dtype)
        code = self.coder.encode(inputs)
        collect[f"{prefix}_coder_relu"] = code
        return branch + ops.cast(self.coder.decode(ops.relu(code)), branch.dtype)

    def _forward(self, inputs, attention_mask=None, training=None, collect=None):
        x = self.attention_norm(inputs)
        x = self.attention(x, x, attention_mask=attention_mask, training=training)
        x = self.attention_output_dropout(x, training=training)
        x = self._connect(self.attention_connection, inputs, x, collect, "attention")

        y = self.mlp_norm(x)
        y = self.mlp_dense_1(y)
        if collect is not None and _activations.name_of(self.activation) == "relu":
            collect["mlp_relu"] = y
        y = self.activation(y)
        y = self.mlp_dropout_1(y, training=training)
        y = self.mlp_dense_2(y)
        y = self.mlp_dropout_2(y, training=training)
        return self._connect(self.mlp_connection, x, y, collect, "mlp")

    def call(self, inputs, attention_mask=None, training=None):
        inputs = self._inputs(inputs)
        return self._forward(inputs, attention_mask=attention_mask, training=training)

    def relu_pre_activations(self, inputs, training=False):
        """The pre-activation of every ReLU inside the block, by name.

        What `kr.dynamics.relu_survival` measures: `attention_coder_relu` and
        `mlp_coder_relu` (the coder's ReLU on a `"pnnh"` path) and `mlp_relu`
        (when `activation="relu"`).

        Args:
            inputs: the block's tokens.
            training: whether dropout is active.

        Returns:
            A dict, name -> pre-activation tensor (empty when the block has
            no ReLU).

        Raises:
            ValueError: for an empty batch (there is nothing to measure) or
                tokens of another shape than the block's.
        """
        inputs = self._inputs(inputs)
        if check.empty_batch(inputs):
            raise ValueError(
                f"`relu_pre_activations` of `{self.name}` needs a non-empty batch; "
                f"received inputs of shape {tuple(inputs.shape)}."
            )
        if not self.built:
            self.build(tuple(inputs.shape))
        collect = {}
        self._forward(inputs, training=training, collect=collect)
        return collect

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = {
            "num_heads": self.num_heads,
            "hidden_dim": self.hidden_dim,
            "mlp_dim": self.mlp_dim,
            "coder": serialize_coder(self.coder),
            "mlp_connection": self.mlp_connection,
            "attention_connection": self.attention_connection,
            "dropout": self.dropout,
            "attention_dropout": self.attention_dropout,
            "layer_norm_epsilon": self.layer_norm_epsilon,
            "bottleneck_ratio": self.bottleneck_ratio,
            "activation": activations.serialize(self.activation),
            "kernel_initializer": initializers.serialize(self.kernel_initializer),
        }
        return {**super().get_config(), **config}

    @classmethod
    def from_config(cls, config):
        coder, config = coder_from_config(config)
        return cls(coder=coder, **config)
