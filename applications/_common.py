"""What every model in `kr.applications` shares: arguments, input, head, weights.

Mirrors the private helpers of `keras.applications` (`imagenet_utils`,
`operation_utils`) with the public Keras API only, so that the ResNet and
ViT families take and check `include_top`, `weights`, `input_tensor`,
`input_shape`, `pooling`, `classes` and `classifier_activation` the same way.
Each check is a rule of `keras_residual._validation`: a `ValueError` naming
the argument, the value and what is allowed (an `ArgumentTypeError`, both a
`TypeError` and a `ValueError`, for a value of the wrong kind).
"""

import os

import keras

from keras_residual import _validation as check

CONNECTIONS = ("residual", "pnnh", "plain")
CODER_SHARING = ("stage", "block")


def connection(name, value):
    """Check a connection argument (`"residual"`, `"pnnh"` or `"plain"`)."""
    return check.one_of(name, value, CONNECTIONS)


def include_top(value):
    """Check `include_top`: `True` or `False` (NumPy bools too; 0 and 1 refused)."""
    return check.boolean("include_top", value)


def classes(value):
    """Check `classes`: an integer >= 1."""
    return check.positive_int("classes", value)


def pooling(value, allowed=(None, "avg", "max")):
    """Check `pooling`: one of `allowed`."""
    return check.one_of("pooling", value, allowed)


def weights(value):
    """`None`, or the path to an existing weights file.

    No pretrained weights exist for these models (there are none for PNNH
    nets, and the residual nets are here to be trained beside them), so a
    name such as `"imagenet"` is an error rather than a download.
    """
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    value = check.string("weights", value, allow_none=True)
    if value is None:
        return None
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
    shape = check.shape(name, value, rank=3, allow_unknown=True)
    if data_format == "channels_last":
        spatial, channels = shape[:2], shape[2]
    else:
        spatial, channels = shape[1:], shape[0]
    if channels is None:
        raise ValueError(
            f"Argument `{name}` must have a known channel dimension; "
            f"received {name}={value!r} ({data_format})."
        )
    if check.is_integer(min_size):
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
    """`(model_inputs, image_tensor)` from `input_tensor` or a new `keras.Input`.

    The image tensor is floating: an integer or bool `input_tensor` (e.g.
    `keras.Input(shape, dtype="uint8")`) passes through a cast
    (`Rescaling(1.0)`, named `image_to_float`), as `keras.layers.Dense`
    computes integer inputs in its compute dtype; Keras' convolutions crash
    on integer images under tensorflow and torch. The default input is
    float32, as `keras.applications`' (a uint8 batch is converted on entry).
    """
    if input_tensor is None:
        image = keras.Input(shape=shape)
        return image, image
    if not keras.utils.is_keras_tensor(input_tensor):
        image = keras.Input(tensor=input_tensor, shape=shape)
        return image, _floating_image(image)
    if tuple(input_tensor.shape[1:]) != tuple(shape) and None not in input_tensor.shape[1:]:
        raise ValueError(
            "Argument `input_tensor` must have the image shape "
            f"{tuple(shape)} (from `input_shape`); received input_tensor with "
            f"shape {tuple(input_tensor.shape)}."
        )
    sources = keras.utils.get_source_inputs(input_tensor)
    # One input as a tensor, not a list of one: the model is then called with
    # a batch without Keras' warning that the structures differ.
    inputs = sources[0] if len(sources) == 1 else sources
    return inputs, _floating_image(input_tensor)


def _floating_image(image):
    """The image tensor, cast to float by a layer when it is integer or bool."""
    if check.is_floating(image.dtype):
        return image
    return keras.layers.Rescaling(1.0, name="image_to_float")(image)


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
    name = check.string("name", name, allow_none=True)
    if name is None:
        return f"{connection_value}_{family}"
    return name


def finish(inputs, outputs, name, weights_path):
    """Build the functional model and load the weights file, if any."""
    model = keras.Model(inputs, outputs, name=name)
    if weights_path is not None:
        model.load_weights(weights_path)
    return model
