"""Models and optimisers from the JSON configurations of the experiments.

A configuration names things in plain JSON so that it can key a results
file: a residual is `{"kind": "homogeneous", "radius": 0.98}`, an optimiser
`{"name": "sgd", "learning_rate": 0.01, "momentum": 0.9, "clipnorm": 1.0}`.
Everything is built through the library's public API.
"""

import math

import keras

import keras_residual as kr
from keras_residual import _validation as check

RESIDUAL_KINDS = ("identity", "homogeneous", "heterogeneous", "rotational")
RECURRENT_MODELS = ("wcrnn", "simple_rnn", "lstm", "gru")
OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop")
CONNECTIONS = ("plain", "residual", "pnnh")


def make_residual(spec, seed=None, angle0=None):
    """A `kr.residuals` map from its JSON description.

    Args:
        spec: `{"kind": "identity"}`, `{"kind": "homogeneous", "radius": r}`,
            `{"kind": "heterogeneous", "radius_range": [lo, hi]}`, or
            `{"kind": "rotational", "radius": r, "angle": a}` /
            `{..., "angle_factor": f}` (the angle `f * angle0`, with
            `angle0` the data's characteristic frequency).
        seed: seed of the heterogeneous radii.
        angle0: rad/step, needed with `"angle_factor"`.

    Example:

    >>> from keras_residual.experiments import make_residual
    >>> make_residual({"kind": "homogeneous", "radius": 0.98}).radius
    0.98
    """
    if not isinstance(spec, dict):
        raise check.ArgumentTypeError(
            f"Argument `residual` must be a dict with a 'kind' out of {list(RESIDUAL_KINDS)}; "
            f"received residual={spec!r} of type {type(spec).__name__}."
        )
    kind = check.one_of("residual['kind']", spec.get("kind"), RESIDUAL_KINDS)
    if kind == "identity":
        return kr.residuals.Identity()
    if kind == "homogeneous":
        return kr.residuals.Homogeneous(spec["radius"])
    if kind == "heterogeneous":
        return kr.residuals.Heterogeneous(radius_range=tuple(spec["radius_range"]), seed=seed)
    angle = spec.get("angle")
    if angle is None:
        factor = check.positive_real("residual['angle_factor']", spec.get("angle_factor"))
        angle = factor * check.positive_real("angle0", angle0)
    return kr.residuals.Rotational(radius=spec.get("radius", 1.0), angle=angle)


def analytic_lambda_max(spec, units, seed=None, angle0=None):
    """max log|eig R|: the largest Lyapunov exponent as the coupling -> 0."""
    residual = make_residual(spec, seed, angle0)
    residual.build(units)
    return float(max(keras.ops.convert_to_numpy(residual.analytic_exponents())))


def make_recurrent(config, seed, angle0=None):
    """The recurrent layer of a configuration.

    Keys: `model` (`"wcrnn"`, `"simple_rnn"`, `"lstm"`, `"gru"`), `units`;
    for `"wcrnn"`: `residual`, `coupling`; for `"simple_rnn"` optionally
    `recurrent_init`: `{"kind": "orthogonal"}` (Keras' default) or
    `{"kind": "weakly_coupled", "residual": {...}, "coupling": g}`
    (`kr.initializers.WeaklyCoupledResidual`), or `{"kind": "normal",
    "gain": g}` (N(0, g^2 / N) entries); `return_sequences` (default
    False). Kernels are seeded from `seed`.
    """
    model = check.one_of("model", config.get("model"), RECURRENT_MODELS)
    units = check.positive_int("units", config.get("units"))
    options = dict(
        kernel_initializer=keras.initializers.GlorotUniform(seed=seed),
        return_sequences=bool(config.get("return_sequences", False)),
    )
    if model == "wcrnn":
        return kr.layers.WCRNN(
            units,
            coupling=config["coupling"],
            residual=make_residual(config["residual"], seed, angle0),
            recurrent_initializer=keras.initializers.Orthogonal(seed=seed + 1),
            seed=seed,
            **options,
        )
    recurrent = _recurrent_initializer(config.get("recurrent_init"), units, seed, angle0)
    layer = {"simple_rnn": keras.layers.SimpleRNN, "lstm": keras.layers.LSTM,
             "gru": keras.layers.GRU}[model]
    return layer(units, recurrent_initializer=recurrent, **options)


def _recurrent_initializer(spec, units, seed, angle0):
    spec = spec or {"kind": "orthogonal"}
    kind = check.one_of("recurrent_init['kind']", spec.get("kind"),
                        ("orthogonal", "weakly_coupled", "normal"))
    if kind == "orthogonal":
        return keras.initializers.Orthogonal(seed=seed + 1)
    if kind == "normal":
        gain = check.positive_real("recurrent_init['gain']", spec.get("gain", 1.0))
        return keras.initializers.RandomNormal(stddev=gain / math.sqrt(units), seed=seed + 1)
    return kr.initializers.WeaklyCoupledResidual(
        make_residual(spec["residual"], seed, angle0), coupling=spec["coupling"], seed=seed + 1
    )


def make_optimizer(spec):
    """A Keras optimiser from `{"name", "learning_rate", ...}`.

    Other keys are passed on: `clipnorm`, `global_clipnorm`, `momentum`
    (SGD, RMSprop), `nesterov`, `weight_decay` (AdamW).

    Example:

    >>> from keras_residual.experiments import make_optimizer
    >>> opt = make_optimizer({"name": "sgd", "learning_rate": 0.1, "momentum": 0.9})
    >>> type(opt).__name__, float(opt.momentum)
    ('SGD', 0.9)
    """
    if not isinstance(spec, dict):
        raise check.ArgumentTypeError(
            f"Argument `optimizer` must be a dict with a 'name' out of {list(OPTIMIZERS)}; "
            f"received optimizer={spec!r} of type {type(spec).__name__}."
        )
    options = dict(spec)
    name = check.one_of("optimizer['name']", options.pop("name", None), OPTIMIZERS)
    options["learning_rate"] = check.positive_real(
        "optimizer['learning_rate']", options.get("learning_rate")
    )
    cls = {"adam": keras.optimizers.Adam, "adamw": keras.optimizers.AdamW,
           "sgd": keras.optimizers.SGD, "rmsprop": keras.optimizers.RMSprop}[name]
    return cls(**options)


# ---------------------------------------------------------------- CIFAR ResNets of any width


def cifar_resnet(depth, connection, width=16, input_shape=(32, 32, 3), classes=10):
    """A CIFAR ResNet (6n + 2 layers) of any width, from `kr.layers` blocks.

    At `width=16` it is `kr.applications.ResNet{depth}` (same blocks, same
    parameter count; the tests check it); at another width the stem and the
    three stages have `width, 2 width, 4 width` filters. A PNNH net shares
    one `kr.layers.PNNHCoder` per stage among the blocks that keep their
    input's shape, as `kr.applications` does. The classifier outputs logits.

    Args:
        depth: 20, 32, 44, 56 or 110.
        connection: `"plain"`, `"residual"` or `"pnnh"`.
        width: filters of the first stage, an integer >= 1.
        input_shape: image shape, channels last.
        classes: outputs of the classifier.
    """
    depth = check.one_of("depth", depth, (20, 32, 44, 56, 110))
    connection = check.one_of("connection", connection, CONNECTIONS)
    width = check.positive_int("width", width)
    blocks = {"plain": kr.layers.PlainConvBlock, "residual": kr.layers.ResidualConvBlock,
              "pnnh": kr.layers.PNNHConvBlock}[connection]
    options = dict(use_bias=False, batch_norm_momentum=0.9, batch_norm_epsilon=1e-5,
                   kernel_initializer="he_normal", data_format="channels_last")
    n = (depth - 2) // 6
    inputs = keras.Input(input_shape)
    x = keras.layers.Conv2D(width, 3, padding="same", use_bias=False,
                            kernel_initializer="he_normal")(inputs)
    x = keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5)(x)
    x = keras.layers.Activation("relu")(x)
    for stage, filters in enumerate((width, 2 * width, 4 * width)):
        coder = None
        for b in range(n):
            strides = 2 if (stage > 0 and b == 0) else 1
            kwargs = dict(options)
            if connection == "pnnh" and strides == 1 and x.shape[-1] == filters:
                coder = coder or kr.layers.PNNHCoder(filters, data_format="channels_last")
                kwargs["coder"] = coder
            x = blocks(filters, strides=strides, name=f"stage{stage + 2}_block{b + 1}",
                       **kwargs)(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(classes)(x)
    return keras.Model(inputs, outputs, name=f"{connection}_resnet{depth}_w{width}")


def pretrain_coders(model, steps, seed, freeze):
    """Pre-train every PNNH coder of `model` that can reconstruct its input
    (`PNNHCoder.pretrain`, relu(N(0, 1)) reconstruction); returns how many."""
    done = []
    for layer in model.layers:
        coder = getattr(layer, "coder", None)
        if isinstance(coder, kr.layers.PNNHCoder) and id(coder) not in done:
            if coder.input_channels == coder.filters:
                coder.pretrain(steps=steps, seed=seed, trainable_after=not freeze)
                done.append(id(coder))
    return len(done)


def matched_width(depth, connection, target_parameters, input_shape=(28, 28, 1), classes=10,
                  widths=range(4, 33)):
    """The width whose parameter count is closest to `target_parameters`."""
    best = None
    for width in widths:
        count = cifar_resnet(depth, connection, width, input_shape, classes).count_params()
        gap = abs(count - target_parameters)
        if best is None or gap < best[0]:
            best = (gap, width, count)
    return best[1], best[2]
