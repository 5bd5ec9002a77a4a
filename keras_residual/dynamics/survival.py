"""ReLU survival: the fraction of each ReLU's input that passes it.

The Plain Neural Net Hypothesis explains why deep plain nets fail by
"dissipating inputs": a ReLU zeroes every negative pre-activation, so layer
after layer the input's information is lost. The survival rate of a ReLU is
the fraction of its pre-activation entries that are > 0 over a probe batch.
For a pre-activation with mean mu > 0 and variance s^2, the one-sided
Chebyshev (Cantelli) inequality bounds it from below,

    P(z > 0) >= mu^2 / (mu^2 + s^2),

and a residual connection, by adding its non-negative input to the
pre-activation, raises mu and with it the bound.

`relu_survival(model, inputs)` measures every ReLU of a model in one forward
pass of a probe model: Dense/Conv layers (any layer with an `activation`
attribute) with `activation="relu"`, `keras.layers.ReLU` (with
`negative_slope=0`), `keras.layers.Activation("relu")`, and the ReLUs inside
layers that expose `relu_pre_activations(inputs, training=False)` (this
library's blocks and coder). ReLUs hidden inside other custom layers are
not seen: such a layer takes part by implementing the same method, which
returns `{name: pre-activation}` for its input. `survival_bounds` adds the
empirical mean and variance of each pre-activation with its Cantelli bound.
"""

import warnings

import numpy as np

import keras
from keras import ops

from keras_residual import _activations
from keras_residual import _validation as check

__all__ = [
    "SurvivalProbe",
    "cantelli_lower_bound",
    "plot_survival",
    "relu_survival",
    "survival_bounds",
]


def cantelli_lower_bound(mean, variance):
    """Cantelli's lower bound on the survival rate `P(z > 0)`.

    `mu^2 / (mu^2 + s^2)` for a mean `mu > 0`, and 0 (no bound) for
    `mu <= 0`; a zero variance with a positive mean gives 1.

    Args:
        mean: mean `mu` of the pre-activation (float or array).
        variance: variance `s^2 >= 0` (float or array, broadcast with
            `mean`).

    Returns:
        The bound, a float for scalar arguments, else a NumPy array; NaN
        where the mean or the variance is NaN.

    Raises:
        ValueError: for a negative or infinite variance or an infinite
            mean.

    Example:

    >>> kr.dynamics.cantelli_lower_bound(1.0, 3.0)
    0.25
    >>> kr.dynamics.cantelli_lower_bound(-0.5, 1.0)
    0.0
    """
    mu = check.array("mean", mean, nonempty=False)
    var = check.array("variance", variance, nonempty=False)
    mu, var = np.broadcast_arrays(mu.astype("float64"), var.astype("float64"))
    with np.errstate(invalid="ignore"):
        if np.any(var < 0) or np.any(np.isinf(var)) or np.any(np.isinf(mu)):
            raise ValueError(
                "Arguments `mean` and `variance` must be finite (or NaN, which gives a NaN "
                f"bound) with variance >= 0; received mean={mean!r}, variance={variance!r}."
            )
        positive = mu > 0
        safe = np.where(positive, mu, 1.0)
        bound = np.where(positive, safe**2 / (safe**2 + var), 0.0)
    bound = np.where(np.isnan(mu) | np.isnan(var), np.nan, bound)
    return float(bound) if bound.ndim == 0 else bound


# --------------------------------------------------------------------------
# Finding the ReLUs.


def _relu_kind(layer):
    """How a layer's ReLU pre-activations are obtained, or None for no ReLU."""
    if callable(getattr(layer, "relu_pre_activations", None)):
        return "block"
    if isinstance(layer, keras.layers.ReLU):
        slope = float(getattr(layer, "negative_slope", 0.0) or 0.0)
        return "relu_layer" if slope == 0.0 else None
    if isinstance(layer, keras.layers.Activation):
        return "input" if _activations.name_of(layer.activation) == "relu" else None
    activation = getattr(layer, "activation", None)
    if activation is not None and not isinstance(layer, keras.Model):
        try:
            name = _activations.name_of(activation)
        except Exception:  # an activation Keras cannot serialize
            name = None
        if name == "relu":
            return "activation"
    return None


def _is_graph_model(model):
    return isinstance(model, keras.Model) and getattr(model, "inputs", None) is not None


def _call_inputs(layer):
    """The inputs of the layer's first call in the graph.

    `Functional` overrides `.input` with its own constructor inputs; the base
    property gives, for a model nested in another, the tensors it was called
    on in the outer graph (and for any other layer the same as `.input`).
    """
    return keras.layers.Layer.input.fget(layer)


def _graph_inputs(model):
    inputs = model.inputs
    return inputs[0] if len(inputs) == 1 else inputs


class _PreActivationStats(keras.layers.Layer):
    """Survival, mean and variance of the ReLU pre-activations of one layer.

    Wraps the layer (without adding a node to it) and returns a
    `(num_relus, 3)` float32 tensor: rows `[P(z > 0), mean(z), var(z)]`,
    pooled over every entry of the pre-activation.
    """

    def __init__(self, target, kind, **kwargs):
        super().__init__(dtype=target.dtype_policy, **kwargs)
        self.target = target
        self.kind = kind
        self.relu_names = None

    def _pre_activations(self, x):
        target = self.target
        if self.kind == "block":
            return target.relu_pre_activations(x, training=False)
        if self.kind == "input":
            return {"": x}
        if self.kind == "relu_layer":
            return {"": x - ops.cast(getattr(target, "threshold", 0.0) or 0.0, x.dtype)}
        # A layer with `activation="relu"`: call it with a linear activation.
        activation = target.activation
        try:
            target.activation = keras.activations.linear
            z = target(x)
        finally:
            target.activation = activation
        return {"": z}

    def call(self, x):
        pre = self._pre_activations(x)
        self.relu_names = list(pre)
        rows = []
        for z in pre.values():
            z = ops.cast(z, "float32")
            mean = ops.mean(z)
            # NaN > 0 is False: a NaN entry would count as a dead unit, so a
            # pre-activation holding NaN has a NaN survival rate.
            # (A mean, not ops.any: JAX's symbolic batch cannot be reduced
            # by `any` while Keras infers the probe's output spec.)
            nan_fraction = ops.mean(ops.cast(ops.isnan(z), "float32"))
            survival = ops.where(
                ops.greater(nan_fraction, 0.0),
                float("nan"),
                ops.mean(ops.cast(ops.greater(z, 0.0), "float32")),
            )
            rows.append(ops.stack([survival, mean, ops.mean(ops.square(z - mean))]))
        if not rows:
            return ops.zeros((0, 3), "float32")
        return ops.stack(rows)


def _key(prefix, layer, relu_name):
    name = f"{prefix}{layer.name}"
    return f"{name}/{relu_name}" if relu_name else name


class SurvivalProbe:
    """A probe model over the ReLU pre-activations of a model (one pass).

    What `relu_survival`, `survival_bounds` and `ReLUSurvivalCallback` run:
    built once for a model (building the model on `inputs` first when it is
    not built), then `stats(inputs)` measures every selected ReLU in one
    forward pass.

    Args:
        model: a Functional or Sequential model, or a single layer with a
            ReLU.
        layers: `None` (every ReLU) or layer names / layers to restrict to.
        inputs: a probe batch, used to build an unbuilt model.

    Raises:
        ValueError: the model has no ReLU, `layers` names a layer without
            one, or `inputs` is empty.
        TypeError: `model` is not a Keras model or layer, or is a
            subclassed model (which has no graph to probe).

    `entries` are `(prefix, layer, wrapper, output)`: the `_PreActivationStats`
    wrapper of a ReLU layer (it knows the ReLUs' names) and its output in the
    probe's graph.
    """

    def __init__(self, model, layers=None, inputs=None):
        self.model = model
        self.selection = check_selection(layers)
        if inputs is not None:
            inputs = check.probe_batch("inputs", inputs)
            if isinstance(model, keras.Model) and not model.built:
                model(inputs)
        if _is_graph_model(model):
            entries = self._graph_entries(model, prefix="")
            if not entries:
                raise ValueError(
                    f"Argument `model` has no ReLU to measure: model `{model.name}` has no "
                    "ReLU activation, keras.layers.ReLU, Activation('relu') or layer with "
                    "`relu_pre_activations` (such as this library's blocks)."
                )
            self._check_selection(entries)
            entries = [e for e in entries if self._selected(e)]
            outputs = [output for _, _, _, output in entries]
            self.keras_probe = keras.Model(
                _graph_inputs(model), outputs, name=f"{model.name}_relu_probe"
            )
            self.entries = entries
        elif isinstance(model, keras.Model):
            raise TypeError(
                "Argument `model` must be a Functional or Sequential model, or a "
                "single layer: a subclassed model has no graph to probe; received "
                f"model={model.__class__.__name__}. Measure its layers, or build it "
                "functionally."
            )
        elif isinstance(model, keras.layers.Layer):
            kind = _relu_kind(model)
            if kind is None:
                raise ValueError(
                    f"Argument `model` has no ReLU: received layer `{model.name}` "
                    f"({model.__class__.__name__})."
                )
            self.entries = [("", model, _PreActivationStats(model, kind), None)]
            self.keras_probe = None
        else:
            raise TypeError(
                "Argument `model` must be a Keras model or layer; received "
                f"model={model!r} of type {type(model).__name__}."
            )

    def _graph_entries(self, model, prefix):
        entries = []
        for layer in model.layers:
            if _is_graph_model(layer):
                inner = self._graph_entries(layer, f"{prefix}{layer.name}/")
                if not inner:
                    continue
                inner_probe = keras.Model(
                    _graph_inputs(layer),
                    [out for _, _, _, out in inner],
                    name=f"{layer.name}_relu_probe",
                )
                try:
                    outer_inputs = _call_inputs(layer)
                except (AttributeError, ValueError):
                    warnings.warn(f"relu_survival: skipping model `{layer.name}`, never called.")
                    continue
                outputs = keras.tree.flatten(inner_probe(outer_inputs))
                for (p, sub, names, _), out in zip(inner, outputs):
                    entries.append((p, sub, names, out))
                continue
            kind = _relu_kind(layer)
            if kind is None:
                continue
            try:
                tensor = _call_inputs(layer)
            except (AttributeError, ValueError):
                warnings.warn(f"relu_survival: skipping layer `{layer.name}`, never called.")
                continue
            wrapper = _PreActivationStats(layer, kind)
            # Calling the wrapper traces the layer's pre-activations (no node
            # is added to the layer itself) and names its ReLUs.
            entries.append((prefix, layer, wrapper, wrapper(tensor)))
        return entries

    def _selected(self, entry):
        if self.selection is None:
            return True
        prefix, layer, _, _ = entry
        full = f"{prefix}{layer.name}"
        return (
            id(layer) in self.selection["ids"]
            or full in self.selection["names"]
            or layer.name in self.selection["names"]
        )

    def _check_selection(self, entries):
        if self.selection is None:
            return
        known = {f"{p}{layer.name}" for p, layer, _, _ in entries}
        known |= {layer.name for _, layer, _, _ in entries}
        unknown = sorted(self.selection["names"] - known)
        ids = {id(layer) for _, layer, _, _ in entries}
        unknown += [repr(o) for o in self.selection["objects"] if id(o) not in ids]
        if unknown:
            raise ValueError(
                f"Argument `layers` names layers with no ReLU in the model: {unknown}; "
                f"allowed: {sorted(known)}."
            )

    def stats(self, inputs, compiled=False):
        """`{key: (survival, mean, variance)}` in forward order, one pass.

        `compiled=True` runs the probe through Keras' compiled predict step
        (worth it when the probe is reused, as by the callback); otherwise it
        is called eagerly, which is faster for a single pass. A ReLU whose
        pre-activation holds NaN gets NaN figures, with a `RuntimeWarning`.
        """
        inputs = check.probe_batch("inputs", inputs)
        if self.keras_probe is not None:
            if compiled:
                outputs = self.keras_probe.predict_on_batch(inputs)
            else:
                outputs = self.keras_probe(inputs, training=False)
            wrappers = [w for _, _, w, _ in self.entries]
        else:
            _, layer, wrapper, _ = self.entries[0]
            if not layer.built:
                layer(inputs)
            outputs = wrapper(inputs)
            wrappers = [wrapper]
        outputs = [np.asarray(keras.ops.convert_to_numpy(o)) for o in keras.tree.flatten(outputs)]
        result = {}
        for (prefix, layer, _, _), wrapper, rows in zip(self.entries, wrappers, outputs):
            names = wrapper.relu_names or []
            for name, row in zip(names, rows.reshape(-1, 3)):
                result[_key(prefix, layer, name)] = tuple(float(v) for v in row)
        bad = [key for key, row in result.items() if not np.all(np.isfinite(row))]
        if bad:
            warnings.warn(
                f"ReLU survival: the pre-activations of {len(bad)} of {len(result)} ReLUs hold "
                f"NaN or inf (first: {bad[0]!r}); their figures are NaN/inf, not rates.",
                RuntimeWarning,
                stacklevel=3,
            )
        return result


def check_selection(layers):
    """The `layers=` argument of the survival measures and callback: None
    (every ReLU), a layer name or layer, or a non-empty list of them."""
    if layers is None:
        return None
    if isinstance(layers, (str, keras.layers.Layer)):
        layers = [layers]
    try:
        items = list(layers)
    except TypeError:
        raise TypeError(
            "Argument `layers` must be None, a layer name, a layer, or a list of "
            f"them; received layers={layers!r}."
        ) from None
    if not items:
        raise ValueError(
            "Argument `layers` must be None (every ReLU), a layer name, a layer, or a "
            f"non-empty list of them; received layers={layers!r}."
        )
    names, objects = set(), []
    for item in items:
        if isinstance(item, str):
            names.add(item)
        elif isinstance(item, keras.layers.Layer):
            objects.append(item)
        else:
            raise TypeError(
                "Argument `layers` must hold layer names or layers; received "
                f"an item {item!r} of type {type(item).__name__}."
            )
    return {"names": names, "objects": objects, "ids": {id(o) for o in objects}}


# --------------------------------------------------------------------------
# Public measures.


def survival_bounds(model, inputs, layers=None):
    """Survival rate, mean, variance and Cantelli bound of every ReLU.

    Statistics are pooled over every entry of a pre-activation (batch,
    positions and channels), so the Cantelli bound is a true lower bound of
    the measured survival rate (it holds for the empirical distribution).

    Args:
        model: a Functional or Sequential model, or a single layer with a
            ReLU (e.g. a PNNH block).
        inputs: a probe batch (NumPy array, or what the model takes).
        layers: `None` (every ReLU) or layer names / layers to restrict to
            (a block's name selects all its ReLUs).

    Returns:
        A dict in forward (depth) order, key -> dict with `"survival"`,
        `"mean"`, `"variance"` and `"cantelli_bound"`. Keys are layer names;
        ReLUs inside a block are `"<block>/<relu>"` (e.g.
        `"pnnh_conv_block/output_relu"`), inside a nested model
        `"<model>/<layer>"`.

    Example:

    >>> model = keras.Sequential(
    ...     [keras.Input((8,)), keras.layers.Dense(16, activation="relu")])
    >>> stats = kr.dynamics.survival_bounds(model, np.random.rand(32, 8))
    >>> s = stats[model.layers[0].name]
    >>> s["survival"] >= s["cantelli_bound"]
    True
    """
    stats = SurvivalProbe(model, layers, inputs=inputs).stats(inputs)
    return {
        key: {
            "survival": survival,
            "mean": mean,
            "variance": variance,
            "cantelli_bound": _bound(mean, variance),
        }
        for key, (survival, mean, variance) in stats.items()
    }


def relu_survival(model, inputs, layers=None):
    """Survival rate of every ReLU of a model: the fraction of entries > 0.

    One forward pass (inference mode) of a probe model whose outputs are the
    ReLUs' pre-activation statistics. Finds Dense/Conv (any layer with an
    `activation` attribute) with `activation="relu"`, `keras.layers.ReLU`
    (`negative_slope=0`; entries above `threshold` count),
    `keras.layers.Activation("relu")`, and the ReLUs inside layers exposing
    `relu_pre_activations` (this library's blocks), in nested Functional or
    Sequential models too. A layer called at several places of the graph is
    measured at its first call. Works on every backend.

    Args:
        model: a Functional or Sequential model, or a single layer with a
            ReLU (e.g. a PNNH block).
        inputs: a probe batch (NumPy array, or what the model takes).
        layers: `None` (every ReLU) or layer names / layers to restrict to
            (a block's name selects all its ReLUs).

    Returns:
        A dict in forward (depth) order, key -> survival rate in [0, 1].
        Keys are as in `survival_bounds`.

    Example:

    >>> x = keras.Input((8, 8, 16))
    >>> y = x
    >>> for i in range(4):
    ...     y = kr.layers.PlainConvBlock(16, name=f"block_{i}")(y)
    >>> model = keras.Model(x, y)
    >>> rates = kr.dynamics.relu_survival(model, np.random.rand(8, 8, 8, 16))
    >>> list(rates)[:3]
    ['block_0/learner_relu_1', 'block_0/output_relu', 'block_1/learner_relu_1']
    """
    stats = SurvivalProbe(model, layers, inputs=inputs).stats(inputs)
    return {key: survival for key, (survival, _, _) in stats.items()}


def _bound(mean, variance):
    """The Cantelli bound of measured figures: NaN when they are not finite
    (an overflowing or NaN pre-activation, already warned about)."""
    if not (np.isfinite(mean) and np.isfinite(variance)):
        return float("nan")
    return cantelli_lower_bound(mean, max(variance, 0.0))


def plot_survival(rates, ax=None, keys=None, **plot_kwargs):
    """Plot survival rate against depth: one line per epoch (or one line).

    Args:
        rates: `{key: rate}` (one line, e.g. from `relu_survival`) or
            `{epoch: {key: rate}}` (one line per epoch, e.g.
            `ReLUSurvivalCallback.rates`).
        ax: a matplotlib axis, or `None` for a new figure.
        keys: the ReLU keys to plot, in depth order (default: all, in the
            order of the first epoch); e.g. only the blocks' `output_relu`.
        **plot_kwargs: passed to `ax.plot`.

    Returns:
        The matplotlib axis.

    Example:

    >>> rates = {0: {"block_0/output_relu": 0.61, "block_1/output_relu": 0.55},
    ...          1: {"block_0/output_relu": 0.64, "block_1/output_relu": 0.60}}
    >>> ax = kr.dynamics.plot_survival(rates)  # e.g. ReLUSurvivalCallback.rates
    >>> len(ax.lines)
    2
    """
    import matplotlib.pyplot as plt

    if not rates:
        raise ValueError("Argument `rates` is empty: nothing to plot.")
    first = next(iter(rates.values()))
    series = rates if isinstance(first, dict) else {None: rates}
    if ax is None:
        _, ax = plt.subplots()
    if keys is None:
        keys = list(next(iter(series.values())))
    for epoch, values in series.items():
        label = plot_kwargs.pop("label", None) if epoch is None else f"epoch {epoch + 1}"
        ax.plot(
            range(1, len(keys) + 1),
            [values.get(k, np.nan) for k in keys],
            marker=".",
            label=label,
            **plot_kwargs,
        )
    ax.set_xlabel("ReLU (depth order)")
    ax.set_ylabel("survival rate P(z > 0)")
    ax.set_ylim(0.0, 1.0)
    if len(series) > 1 or None not in series:
        ax.legend()
    return ax
