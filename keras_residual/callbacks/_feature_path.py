"""What a model feeds one of its recurrent layers.

`FeaturePath(model, layer)` follows a Keras model's graph from its inputs to
the call of one recurrent layer, through every layer before it and through
every Functional or Sequential sub-model that encloses it, nested to any
depth. Called on a batch of model inputs, it returns exactly what the layer
receives in the model's forward pass in inference mode: its input
sequences, the initial state the model gives it (an encoder's state, say)
and the mask (from `Embedding(mask_zero=True)` or `Masking`).

Where that cannot be known from the graph (a subclassed model, a layer
called at several places, a layer inside a wrapper other than
`Bidirectional`, ...) it raises an error that names the problem and the
way out: the probe of the recurrent layer itself (what
`LyapunovCallback(..., probe_is_layer_input=True)` takes).

Keras has no public API for a graph's nodes (the arguments of each call),
a `Sequential`'s graph, a layer's tracked sublayers or a tensor's mask:
those come from `keras_residual._keras_compat`, the one module that reads
Keras' private attributes; the rest is public Keras (`keras.Function`,
`Functional.operations`, `keras.Model(inputs, outputs)`).
"""

import collections
import inspect

import keras
import numpy as np

from keras_residual import _keras_compat as compat


_FIX = (
    "Pass probe inputs of the recurrent layer itself, (batch, timesteps, features), "
    "with probe_is_layer_input=True"
)

LayerInputs = collections.namedtuple("LayerInputs", ["sequences", "initial_state", "mask"])
LayerInputs.__doc__ = """What a recurrent layer receives in the model: NumPy
`sequences` (batch, timesteps, features), `initial_state` (a list of
(batch, size) arrays, or None for zeros) and `mask` ((batch, timesteps)
bool, or None)."""


# --------------------------------------------------------------------------
# The recurrent layers of a model, and their names


def _children(layer):
    """The layers a layer holds directly, as `recurrent_layers` walks them."""
    if isinstance(layer, keras.layers.Bidirectional):
        return [layer.forward_layer, layer.backward_layer]
    # Every sublayer the layer tracks (a custom layer's attributes included).
    return [
        child for child in compat.sublayers(layer, recursive=False)
        if not isinstance(child, keras.layers.InputLayer)
    ]


def recurrent_entries(model):
    """`(path, layer)` for every `keras.layers.RNN` inside a model (nested
    models and wrappers such as `Bidirectional` included), depth first;
    `path` is the names of the enclosing layers and of the layer, joined by
    "/" (e.g. "encoder/lstm", "bidirectional/forward_simple_rnn")."""
    found, seen = [], set()

    def visit(layer, prefix):
        if id(layer) in seen:
            return
        seen.add(id(layer))
        path = f"{prefix}{layer.name}"
        if isinstance(layer, keras.layers.RNN):
            found.append((path, layer))
            return
        for child in _children(layer):
            visit(child, f"{path}/")

    for layer in getattr(model, "layers", []) or []:
        visit(layer, "")
    return found


def layer_names(entries):
    """The name `layer=` takes for each entry: the layer's own name when no
    other recurrent layer of the model has it, else its path."""
    counts = collections.Counter(layer.name for _, layer in entries)
    return [layer.name if counts[layer.name] == 1 else path for path, layer in entries]


# --------------------------------------------------------------------------
# The graph


def _contains(container, target):
    if container is target:
        return True
    return any(layer is target for layer in compat.sublayers(container))


def _keras_call(model):
    """Whether the model's `call` is Keras' own (not a subclass's Python code)."""
    return type(model).call.__module__.split(".")[0] == "keras"


def _graph(container):
    """The Functional graph that runs when `container` is called, or None
    (a subclassed model, or a Sequential that was never built)."""
    if isinstance(container, keras.Sequential):
        return compat.sequential_graph(container) if _keras_call(container) else None
    # A Functional model: a keras.Model that is a keras.Function (a graph).
    if isinstance(container, keras.Model) and isinstance(container, keras.Function):
        return container if _keras_call(container) else None
    return None


def _describe(layer):
    return f"{layer.name!r} ({type(layer).__name__})"


def _chains(container, target, where, owner):
    """Every chain [(model, graph, op, direction), ...] from `container`'s
    graph down to the op that calls `target` (direction: "forward" or
    "backward" inside a Bidirectional, else None)."""
    graph = _graph(container)
    if graph is None:
        kind = "a Sequential model that was never built" if isinstance(
            container, keras.Sequential
        ) else "a subclassed model (its call() is Python code, not a graph)"
        raise TypeError(
            f"{owner}: the recurrent layer {_describe(target)} is inside "
            f"{where}{_describe(container)}, {kind}, so what reaches the layer cannot be "
            f"traced from the model's inputs. {_FIX}, or build the model with the "
            "functional API or keras.Sequential."
        )
    found = []
    for op in graph.operations:
        if op is target:
            found.append([(container, graph, op, None)])
        elif isinstance(op, keras.layers.Bidirectional) and (
            target is op.forward_layer or target is op.backward_layer
        ):
            direction = "forward" if target is op.forward_layer else "backward"
            found.append([(container, graph, op, direction)])
        elif _contains(op, target):
            if isinstance(op, keras.Model):
                for chain in _chains(op, target, f"{where}{container.name!r} > ", owner):
                    found.append([(container, graph, op, None)] + chain)
            else:
                raise ValueError(
                    f"{owner}: the recurrent layer {_describe(target)} is inside "
                    f"the layer {_describe(op)} of model {container.name!r}; only "
                    "Functional and Sequential sub-models and Bidirectional are followed, "
                    f"so what {op.name!r} passes to the recurrent layer is unknown. {_FIX}."
                )
    return found


# --------------------------------------------------------------------------
# The path


def _call_arguments(op, node):
    """The named arguments of one call of `op`; the first one is "sequences"."""
    args, kwargs = node.arguments.args, node.arguments.kwargs
    parameters = inspect.signature(op.call).parameters
    try:
        bound = inspect.signature(op.call).bind(*args, **kwargs).arguments
    except TypeError:  # a call() Keras accepted but Python cannot bind: by position
        return {"sequences": args[0] if args else None, **kwargs}
    arguments = {}
    for name, value in bound.items():
        if parameters[name].kind is inspect.Parameter.VAR_KEYWORD:
            arguments.update(value)
        else:
            arguments[name] = value
    first = next(iter(parameters))
    arguments["sequences"] = arguments.pop(first, None)
    return arguments


def _is_tensor(value):
    return isinstance(value, keras.KerasTensor)


class FeaturePath:
    """The map from a model's inputs to what one of its recurrent layers receives.

    Args:
        model: a Functional or Sequential Keras model (sub-models of either
            kind, nested to any depth, are followed).
        layer: a `keras.layers.RNN` inside `model` (the forward or backward
            layer of a `Bidirectional` included).
        owner: the name error messages begin with (the callback the user
            made).

    Raises:
        TypeError: the layer is inside a subclassed model.
        ValueError: the layer, or a sub-model enclosing it, is called at
            several places of the graph or never; the layer is inside a
            wrapper other than `Bidirectional`; or its call has arguments
            (`constants`, ...) the spectrum cannot take.

    Calling it on a batch of model inputs returns `LayerInputs`.
    """

    def __init__(self, model, layer, owner="FeaturePath"):
        self.model = model
        self.layer = layer
        self.owner = owner
        if not _contains(model, layer):
            raise ValueError(
                f"{owner}: layer {_describe(layer)} is not part of model "
                f"{model.name!r}. Pass one of the model's recurrent layers, or probe inputs "
                "of the layer itself with probe_is_layer_input=True."
            )
        chains = _chains(model, layer, "", owner)
        if len(chains) != 1:
            raise ValueError(
                f"{owner}: the recurrent layer {_describe(layer)} is called "
                f"{'at ' + str(len(chains)) + ' places' if chains else 'nowhere'} in the graph "
                f"of model {model.name!r}, so which of its inputs to probe is ambiguous. "
                f"{_FIX}."
            )
        self.stages = [self._stage(*link) for link in chains[0]]

    def _stage(self, container, graph, op, direction):
        owner = self.owner
        nodes = compat.call_nodes(graph, op)
        if len(nodes) != 1:
            what = "the recurrent layer" if op is self.layer or direction else "the sub-model"
            raise ValueError(
                f"{owner}: {what} {_describe(op)} is called "
                f"{'at ' + str(len(nodes)) + ' places' if nodes else 'nowhere'} in the graph "
                f"of model {container.name!r}, so which of its inputs to probe is ambiguous. "
                f"{_FIX}."
            )
        arguments = _call_arguments(op, nodes[0])
        sequences = arguments.pop("sequences")
        recurrent = isinstance(op, (keras.layers.RNN, keras.layers.Bidirectional))
        outputs = {"sequences": sequences}
        for name, value in arguments.items():
            if name == "training" or value is None:
                continue
            if recurrent and name in ("initial_state", "mask"):
                flat = keras.tree.flatten(value)
                if not all(_is_tensor(v) for v in flat):
                    raise ValueError(
                        f"{owner}: layer {_describe(op)} is called with a constant "
                        f"{name}= in model {container.name!r}; only tensors of the graph can be "
                        f"mapped. {_FIX} (and initial_state= for its initial state)."
                    )
                if name == "initial_state":
                    if direction is not None:
                        half = len(flat) // 2
                        flat = flat[:half] if direction == "forward" else flat[half:]
                    outputs[name] = list(flat)
                else:
                    outputs[name] = value
                continue
            if any(_is_tensor(v) for v in keras.tree.flatten(value)):
                raise ValueError(
                    f"{owner}: {_describe(op)} is called with the tensor argument "
                    f"{name}= in model {container.name!r}, which the Lyapunov spectrum cannot "
                    f"take into account. {_FIX}."
                )
        if not recurrent:
            outputs = sequences
        return {
            "graph": graph,
            "op": op,
            "implicit_mask": recurrent and compat.get_keras_mask(sequences) is not None,
            "function": keras.Model(graph.input, outputs, name=f"{op.name}_feature_path"),
        }

    def __call__(self, inputs):
        """`LayerInputs` of the recurrent layer for a batch of model inputs."""
        values = inputs
        for stage in self.stages:
            values = _fit_structure(values, stage["graph"].input)
            values = stage["function"](values, training=False)
        final = self.stages[-1]
        sequences = values["sequences"]
        mask = values.get("mask")
        if mask is None and final["implicit_mask"]:
            mask = compat.get_keras_mask(sequences)
        initial_state = values.get("initial_state")
        return LayerInputs(
            sequences=np.asarray(keras.ops.convert_to_numpy(sequences)),
            initial_state=None if initial_state is None else [
                np.asarray(keras.ops.convert_to_numpy(s)) for s in initial_state
            ],
            mask=None if mask is None else np.asarray(keras.ops.convert_to_numpy(mask), bool),
        )


def _fit_structure(values, structure):
    """`values` in the nesting of a graph's inputs when only the nesting
    differs (a tensor for a one-element list, a tuple for a list)."""
    if isinstance(values, dict) or isinstance(structure, dict):
        return values
    flat = keras.tree.flatten(values)
    if len(flat) != len(keras.tree.flatten(structure)):
        return values
    return keras.tree.pack_sequence_as(structure, flat)
