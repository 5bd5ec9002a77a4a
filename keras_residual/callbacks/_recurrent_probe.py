"""The base of the callbacks that drive one recurrent layer of a model with a probe."""

import keras

from keras_residual import _keras_compat as compat
from keras_residual import _validation as check
from keras_residual.callbacks import _feature_path
from keras_residual.dynamics.lyapunov.spectrum import check_inputs


class RecurrentProbeCallback(keras.callbacks.Callback):
    """A callback that runs a probe batch into one recurrent layer of `self.model`.

    `LyapunovCallback` and `GradientFlossing` share it: it finds the
    recurrent layer (`layer=None`: the model's only one; a name, as the
    errors list them; or the layer), follows the model's graph to it
    (`_feature_path.FeaturePath`), and maps `probe_inputs`, a batch of the
    model's inputs, to exactly what that layer receives in inference mode
    (or takes them as the layer's own inputs with
    `probe_is_layer_input=True`).

    Args:
        probe_inputs: a batch of model inputs (any rank and dtype the model
            takes; a list or dict for several inputs), or, with
            `probe_is_layer_input=True`, the layer's `(batch, timesteps,
            features)` inputs.
        layer: `None`, a name or the recurrent layer (or its cell).
        probe_is_layer_input: see `probe_inputs`.
    """

    def __init__(self, probe_inputs, layer=None, probe_is_layer_input=False):
        super().__init__()
        self.probe_is_layer_input = check.boolean("probe_is_layer_input", probe_is_layer_input)
        if self.probe_is_layer_input:
            probe = check_inputs("probe_inputs", probe_inputs)
        else:
            # Any rank and dtype: the model says what it accepts, at on_train_begin.
            probe = check.probe_batch("probe_inputs", probe_inputs)
        if layer is not None and not isinstance(layer, (str, keras.layers.Layer)):
            raise TypeError(
                "Argument `layer` must be None, a layer name or a keras.layers.RNN layer; "
                f"received {layer!r} of type {type(layer).__name__}."
            )
        self.probe_inputs = probe
        self.layer = layer
        self.layer_inputs = None
        self._rnn = None
        self._path = None

    @property
    def _name(self):
        return type(self).__name__

    @property
    def probe_steps(self):
        """The probe's number of time steps when it is the layer's own input."""
        return self.probe_inputs.shape[1] if self.probe_is_layer_input else None

    # ------------------------------------------------------------------ layer
    def _find_layer(self):
        model = self.model
        entries = _feature_path.recurrent_entries(model)
        names = _feature_path.layer_names(entries)
        if isinstance(self.layer, keras.layers.Layer):
            return self._layer_object(self.layer, entries, names)
        if isinstance(self.layer, str):
            matches = [l for (path, l), name in zip(entries, names) if self.layer in (name, path)]
            if len(matches) == 1:
                return matches[0]
            same = [path for path, l in entries if l.name == self.layer]
            if len(same) > 1:
                raise ValueError(
                    f"{self._name}: model {model.name!r} has {len(same)} recurrent layers "
                    f"named {self.layer!r}; pass layer=<one of {same}>."
                )
            other = _layer_named(model, self.layer)
            if isinstance(other, keras.layers.Bidirectional):
                raise ValueError(_bidirectional_message(other, entries, names))
            if other is not None:
                raise TypeError(
                    f"{self._name}: layer {self.layer!r} of model {model.name!r} "
                    f"({type(other).__name__}) is not a recurrent layer (keras.layers.RNN); "
                    f"the model's recurrent layers are {names}."
                )
            raise ValueError(
                f"{self._name}: the model has no layer named {self.layer!r}; its "
                f"recurrent layers are {names}. Pass layer=<one of these names>."
            )
        if len(entries) != 1:
            raise ValueError(
                f"{self._name} needs exactly one recurrent layer (keras.layers.RNN) in "
                f"the model, or `layer=`; model {model.name!r} has {len(entries)}: "
                f"{names}. Pass layer=<one of these names>."
            )
        return entries[0][1]

    def _layer_object(self, layer, entries, names):
        if isinstance(layer, keras.layers.Bidirectional):
            raise ValueError(_bidirectional_message(layer, entries, names))
        if isinstance(layer, keras.layers.RNN):
            return layer
        if hasattr(layer, "state_size"):  # a cell: the model's RNN that runs it
            owners = [l for _, l in entries if l.cell is layer]
            if len(owners) == 1:
                return owners[0]
            if self.probe_is_layer_input:
                return layer
            raise ValueError(
                f"{self._name}: the cell {layer.name!r} is not the cell of one of the "
                f"model's recurrent layers {names}; pass one of them as `layer=`, or probe "
                "inputs of the cell with probe_is_layer_input=True."
            )
        raise TypeError(
            f"{self._name}: layer {layer.name!r} ({type(layer).__name__}) is not a "
            "recurrent layer (keras.layers.RNN) or an RNN cell."
        )

    # ------------------------------------------------------------------ inputs
    def _layer_inputs(self):
        """What the recurrent layer receives from the probe."""
        if self._path is None:
            return _feature_path.LayerInputs(self.probe_inputs, None, None)
        return self._path(self.probe_inputs)

    def _attach(self):
        """Find the recurrent layer, follow the model's graph to it, run the
        probe through the layers before it once (before training) and check
        that the layer gets a spectrum's inputs; returns those `LayerInputs`."""
        self._rnn = self._find_layer()
        self._path = None
        if not self.probe_is_layer_input:
            self._path = _feature_path.FeaturePath(self.model, self._rnn, owner=self._name)
        rnn = self._rnn
        try:
            layer_inputs = self._layer_inputs()
        except Exception as error:  # noqa: BLE001 (re-raised with the context)
            raise ValueError(
                f"{self._name}: `probe_inputs` ({_shapes(self.probe_inputs)}) could not "
                f"be run through the layers of model {self.model.name!r} before layer "
                f"{rnn.name!r}; they must be a batch of the model's inputs "
                f"({_shapes(self.model.inputs)}, batch first). To pass the inputs of the "
                f"recurrent layer itself, use probe_is_layer_input=True. The error was: "
                f"{type(error).__name__}: {error}"
            ) from error
        try:
            check_inputs("probe_inputs", layer_inputs.sequences)
        except ValueError as error:
            raise ValueError(
                f"{self._name}: the model gives layer {rnn.name!r} inputs of shape "
                f"{layer_inputs.sequences.shape} from `probe_inputs`; a spectrum needs "
                f"(batch, timesteps, features) ({error})"
            ) from error
        if layer_inputs.mask is not None and not layer_inputs.mask.all():
            raise ValueError(
                f"{self._name}: the model masks {int((~layer_inputs.mask).sum())} of the "
                f"{layer_inputs.mask.size} steps that `probe_inputs` give layer {rnn.name!r} "
                "(Embedding(mask_zero=True) or Masking: padding), and a Lyapunov spectrum "
                "cannot skip steps. Pass probe sequences without padding."
            )
        return layer_inputs


def _shapes(structure):
    def describe(x):
        dtype = keras.backend.standardize_dtype(x.dtype) if hasattr(x, "dtype") else "?"
        return f"shape {tuple(x.shape)} {dtype}"

    flat = keras.tree.flatten(structure)
    if len(flat) == 1:
        return describe(flat[0])
    return "; ".join(describe(x) for x in flat)


def _layer_named(model, name):
    """Any layer of the model (nested included) with this name, or None."""
    for layer in compat.sublayers(model):
        if layer.name == name:
            return layer
    return None


def _bidirectional_message(wrapper, entries, names):
    directions = [
        name for (_, layer), name in zip(entries, names)
        if layer is wrapper.forward_layer or layer is wrapper.backward_layer
    ]
    return (
        f"{wrapper.name!r} is a Bidirectional wrapper of two recurrent "
        f"layers, each with its own spectrum; pass one direction: layer=<one of {directions}> "
        "(the backward one runs time-reversed, as in the model)."
    )
