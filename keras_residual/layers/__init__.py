"""Layers: weakly coupled residual RNNs (and the PNNH blocks)."""

from keras_residual.layers.wcrnn import WCRNN
from keras_residual.layers.wcrnn_cell import WCRNNCell

__all__ = ["WCRNN", "WCRNNCell"]
