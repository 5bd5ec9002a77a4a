"""How the PNNH blocks take, check, build and serialize a (shared) coder.

Used by `PNNHConvBlock` and `PNNHTransformerBlock`.
"""

import keras

from keras_residual import _validation as check
from keras_residual.layers.pnnh_coder import PNNHCoder


def check_coder(coder, filters, strides=(1, 1), data_format=None):
    """Validate a coder passed to a block at construction (type, width, stride)."""
    if not isinstance(coder, PNNHCoder):
        raise check.ArgumentTypeError(
            "Argument `coder` must be a `kr.layers.PNNHCoder` or None; "
            f"received coder={coder!r} of type {type(coder).__name__}."
        )
    if coder.filters != filters:
        raise ValueError(
            f"Argument `coder` must output the block's {filters} channels; "
            f"received coder `{coder.name}` with filters={coder.filters}."
        )
    if coder.strides != strides:
        raise ValueError(
            f"Argument `coder` must have the block's strides {strides}; "
            f"received coder `{coder.name}` with strides={coder.strides}."
        )
    if data_format is not None and coder.data_format != data_format:
        raise ValueError(
            f"Argument `coder` must have the block's data_format "
            f"{data_format!r}; received coder `{coder.name}` with "
            f"data_format={coder.data_format!r}."
        )
    return coder


def build_coder(block, coder, input_shape, channels):
    """Build a (possibly shared) coder, or check a built one fits the block."""
    if not coder.built:
        coder.build(tuple(input_shape))
    if coder.input_channels != channels:
        raise ValueError(
            f"The coder `{coder.name}` of `{block.name}` was built for "
            f"{coder.input_channels} input channels, but the block receives "
            f"{channels} (input_shape={tuple(input_shape)}). A shared coder "
            "serves only blocks whose input and output shapes agree."
        )


def serialize_coder(coder):
    """The coder's config, marked as shared while Keras saves a model.

    `model.save` serializes inside Keras' object-sharing scope, where an
    object serialized a second time gets a `shared_object_id` and is
    deserialized once and handed to every layer that refers to it. Keras
    marks the first occurrence only when the second one is serialized, and
    by then the first block's config has been copied into the model's
    config; serializing the coder twice here marks the config this block
    returns already. Outside a sharing scope (a plain `get_config()`) no mark
    is added, so `from_config` builds a coder of the block's own.
    """
    if coder is None:
        return None
    config = keras.saving.serialize_keras_object(coder)
    keras.saving.serialize_keras_object(coder)
    return config


def coder_from_config(config):
    """Split a block's config into its deserialized coder and the rest."""
    config = dict(config)
    coder = config.pop("coder", None)
    if isinstance(coder, dict):
        coder = keras.saving.deserialize_keras_object(coder)
    return coder, config
