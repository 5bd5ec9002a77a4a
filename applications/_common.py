"""What every model in `kr.applications` shares: arguments, input, head, weights.

Mirrors the private helpers of `keras.applications` (`imagenet_utils`,
`operation_utils`) with the public Keras API only, so that the ResNet and
ViT families take and check `include_top`, `weights`, `input_tensor`,
`input_shape`, `pooling`, `classes` and `classifier_activation` the same way.
Each check raises a `ValueError` naming the argument, the value and what is
allowed.
"""

import numbers
import os

import keras

from keras_residual.layers import _args as check

CONNECTIONS = ("residual", "pnnh", "plain")
CODER_SHARING = ("stage", "block")


def connection(name, value):
    """Check a connection argument (`"residual"`, `"pnnh"` or `"plain"`)."""
    return check.one_of(name, value, CONNECTIONS)


def classes(value):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(
            f"Argument `classes` must be an integer >= 1; received classes={value!r}."
        )
    return int(value)


def pooling(value, allowed=(None, "avg", "max")):
    if value not in allowed:
        raise ValueError(
            f"Argument `pooling` must be one of {list(allowed)}; received pooling={value!r}."
        )
    return value


def weights(value):
    """`None`, or the path to an existing weights file.

    No pretrained weights exist for these models (there are none for PNNH
    nets, and the residual nets are here to be trained beside them), so a
    name such as `"imagenet"` is an error rather than a download.
    """
    if value is None:
        return None
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, str):
        raise TypeError(
            "Argument `weights` must be None or the path to a weights file; "
            f"received weights={value!r} of type {type(value).__name__}."
        )
    if not os.path.isfile(value):
        if os.sep in value or value.endswith(".h5"):
            raise ValueError(
                "Argument `weights` must be None or the path to an existing "
                f"weights file; no file exists at weights={value!r}."
            )
        raise ValueError(
            "Argument `weights` must be None or the path to a weights file; "
            f"received weights={value!r}. keras-residual ships no pretrained "
            "weights (none exist for PNNH nets): train the model and pass the "
            "path of a file saved with `model.save_weights(...)`."
        )
    return value


def input_shape(value, default, min_size, data_format, name="input_shape"):
    """The full image shape `(H, W, C)` (or `(C, H, W)`), checked.

    Args:
        value: the user's `input_shape`, or `None` for `default`.
        default: the shape `(H, W, C)` used when `value` is None (given
            channels last; permuted for channels first).
        min_size: the smallest height and width the network accepts (its
            stem's and strides' reduction), or `(min_h, min_w)`.
        data_format: `"channels_last"` or `"channels_first"`.
    """
    if value is None:
        value = default if data_format == "channels_last" else (default[2],) + default[:2]
    try:
        shape = tuple(None if s is None else int(s) for s in value)
    except (TypeError, ValueError):
        raise ValueError(
            f"Argument `{name}` must be a tuple of 3 integers (height, width, "
            f"channels); received {name}={value!r}."
        ) from None
    if len(shape) != 3:
        raise ValueError(
            f"Argument `{name}` must be a tuple of 3 integers (height, width, "
            f"channels) for {data_format}; received {name}={value!r}."
        )
    if data_format == "channels_last":
        spatial, channels = shape[:2], shape[2]
    else:
        spatial, channels = shape[1:], shape[0]
    if channels is None or channels < 1:
        raise ValueError(
            f"Argument `{name}` must have a positive channel dimension; "
            f"received {name}={value!r} ({data_format})."
        )
    if isinstance(min_size, numbers.Integral):
        min_size = (min_size, min_size)
    for size, least in zip(spatial, min_size):
        if size is not None and size < least:
            raise ValueError(
                f"Argument `{name}` is too small for this network: height and "
                f"width must be at least {tuple(min_size)} (its stem and "
                f"strides reduce the image by that much); received "
                f"{name}={value!r}."
            )
    return shape


def image_input(input_tensor, shape):
    """`(model_inputs, image_tensor)` from `input_tensor` or a new `keras.Input`."""
    if input_tensor is None:
        image = keras.Input(shape=shape)
        return image, image
    if not keras.utils.is_keras_tensor(input_tensor):
        image = keras.Input(tensor=input_tensor, shape=shape)
        return image, image
    if tuple(input_tensor.shape[1:]) != tuple(shape) and None not in input_tensor.shape[1:]:
        raise ValueError(
            "Argument `input_tensor` must have the image shape "
            f"{tuple(shape)} (from `input_shape`); received input_tensor with "
            f"shape {tuple(input_tensor.shape)}."
        )
    return keras.utils.get_source_inputs(input_tensor), input_tensor


def classification_head(x, include_top, pooling_mode, num_classes, activation, data_format):
    """ResNet's head: global pooling, and the classifier when `include_top`."""
    if include_top:
        x = keras.layers.GlobalAveragePooling2D(data_format=data_format, name="avg_pool")(x)
        return keras.layers.Dense(num_classes, activation=activation, name="predictions")(x)
    if pooling_mode == "avg":
        return keras.layers.GlobalAveragePooling2D(data_format=data_format, name="avg_pool")(x)
    if pooling_mode == "max":
        return keras.layers.GlobalMaxPooling2D(data_format=data_format, name="max_pool")(x)
    return x


def classifier_activation(value, include_top):
    """Resolve the classifier's activation (only used when `include_top`)."""
    if not include_top:
        return value
    try:
        keras.activations.get(value)
    except (TypeError, ValueError) as error:
        raise ValueError(
            "Argument `classifier_activation` must be None or a Keras "
            f"activation (name or callable); received classifier_activation={value!r}."
        ) from error
    return value


def model_name(name, family, connection_value):
    """The model's name: the user's, or `<connection>_<family>` (e.g. `pnnh_resnet50`)."""
    if name is None:
        return f"{connection_value}_{family}"
    if not isinstance(name, str) or not name:
        raise ValueError(f"Argument `name` must be a non-empty string or None; received name={name!r}.")
    return name


def finish(inputs, outputs, name, weights_path):
    """Build the functional model and load the weights file, if any."""
    model = keras.Model(inputs, outputs, name=name)
    if weights_path is not None:
        model.load_weights(weights_path)
    return model
