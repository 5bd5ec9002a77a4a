"""Layers: weakly coupled residual RNNs (and the PNNH blocks)."""

from keras_residual.dynamics.lyapunov.layer import LyapunovExponents
from keras_residual.layers.plain_conv_block import PlainConvBlock
from keras_residual.layers.pnnh_coder import PNNHCoder
from keras_residual.layers.pnnh_conv_block import PNNHConvBlock
from keras_residual.layers.pnnh_transformer_block import PNNHTransformerBlock
from keras_residual.layers.residual_conv_block import ResidualConvBlock
from keras_residual.layers.wcrnn import WCRNN
from keras_residual.layers.wcrnn_cell import WCRNNCell

__all__ = ["WCRNN", "WCRNNCell", "LyapunovExponents"]
__all__ += [
    "PNNHCoder",
    "PNNHConvBlock",
    "PNNHTransformerBlock",
    "PlainConvBlock",
    "ResidualConvBlock",
]
