"""Residual maps rho of weakly coupled residual RNNs.

A WCRNN steps its state as `h_t = rho(h_{t-1}) + coupling * sigma(a_t)`.
The classes here are the residual maps `rho`. A linear one is a matrix R
(column-vector convention, `rho(h) = R h`; with Keras' row vectors the code
computes `h @ R^T`):

| class           | R                                                   |
|-----------------|-----------------------------------------------------|
| `Identity`      | I                                                   |
| `Homogeneous`   | r I                                                 |
| `Heterogeneous` | diag(r_1, ..., r_N)                                 |
| `Rotational`    | blocks r_i [[cos phi_i, -sin phi_i], [sin phi_i, cos phi_i]] |
| `Dense`         | any N x N matrix                                    |
| `Nonlinear`     | rho(h) = R phi(h) for a linear base R               |

Structured maps are applied in O(N) (elementwise products and a pairwise
swap), never as a dense matmul. A residual is configured at construction and
gets its parameters when a layer builds it (`build(units, layer)`): they
become weights of that layer (`residual_*`, non-trainable unless the layer
asks otherwise), so they are saved with the model.
"""

import math

import keras
import numpy as np
from keras import ops

from keras_residual import _activations
from keras_residual import _ops

_PACKAGE = "keras_residual"


def _check_nonnegative_finite(name, value):
    values = np.asarray(value, dtype="float64")
    if values.size == 0 or not np.all(np.isfinite(values)) or np.any(values < 0):
        raise ValueError(
            f"Argument `{name}` must be finite and >= 0; received {name}={value!r}."
        )


def _check_finite(name, value):
    values = np.asarray(value, dtype="float64")
    if values.size == 0 or not np.all(np.isfinite(values)):
        raise ValueError(f"Argument `{name}` must be finite; received {name}={value!r}.")


def _check_range(name, value, nonnegative=False):
    if value is None:
        return None
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(
            f"Argument `{name}` must be a pair (low, high); received {name}={value!r}."
        ) from None
    check = _check_nonnegative_finite if nonnegative else _check_finite
    check(name, (lo, hi))
    if lo > hi:
        raise ValueError(
            f"Argument `{name}` must be ordered, low <= high; received {name}={value!r}."
        )
    return (lo, hi)


class Residual:
    """Base class of residual maps.

    Subclasses define `_initial_values(units)` (NumPy arrays of their
    parameters), `apply(h)`, and, when linear, `_matrix_tensor()` and
    `linear_form()`.
    """

    linear = True

    def __init__(self):
        self.units = None
        self.built = False
        self._params = {}

    # ------------------------------------------------------------------ build
    def _check_units(self, units):
        if not isinstance(units, (int, np.integer)) or units <= 0:
            raise ValueError(f"`units` must be a positive integer; received units={units!r}.")

    def _initial_values(self, units):
        return {}

    def build(self, units, layer=None, trainable=False):
        """Create the parameters for a state of `units` dimensions.

        Args:
            units: state dimension N.
            layer: the layer that owns the parameters (they become its
                weights, named `residual_<name>`); `None` makes free
                `keras.Variable`s.
            trainable: whether the parameters are trained.
        """
        self._check_units(units)
        self.units = int(units)
        for name, value in self._initial_values(self.units).items():
            value = np.asarray(value, dtype="float32")
            initializer = _ArrayInitializer(value)
            if layer is not None:
                variable = layer.add_weight(
                    shape=value.shape,
                    initializer=initializer,
                    trainable=trainable,
                    name=f"residual_{name}",
                )
            else:
                variable = keras.Variable(
                    value, trainable=trainable, name=f"residual_{name}"
                )
            self._params[name] = variable
        self.built = True

    def _require_built(self):
        if not self.built:
            raise ValueError(
                f"{type(self).__name__} is not built: call `build(units)` or use it "
                "inside a layer (e.g. `WCRNNCell(residual=...)`) first."
            )

    def _param(self, name, dtype=None):
        value = self._params[name]
        value = value.value if hasattr(value, "value") else value
        return ops.cast(value, dtype) if dtype is not None else value

    # ------------------------------------------------------------------ maps
    def apply(self, h):
        """rho(h) for a batch of states `h` of shape (batch, units)."""
        raise NotImplementedError

    def linear_form(self, dtype=None):
        """The map as `("identity",)`, `("diagonal", d)`, `("rotation", a, b)`
        or `("dense", k)` of tensors (see `apply_linear_form`): what the
        fused kernels apply at each step, read from the parameters once."""
        raise NotImplementedError

    def prepare(self, dtype=None):
        """A function `h -> rho(h)` with the parameters read once (for loops)."""
        form = self.linear_form(dtype)
        return lambda h: apply_linear_form(form, h)

    def _matrix_tensor(self, dtype=None):
        """R as an (N, N) tensor (column convention)."""
        raise NotImplementedError

    def jacobian(self, h):
        """d rho(h) / d h as a (batch, N, N) tensor, J[b, i, j] = d rho_i / d h_j."""
        self._require_built()
        R = self._matrix_tensor(h.dtype)
        batch = ops.shape(h)[0]
        return ops.broadcast_to(R[None], (batch, self.units, self.units))

    def matrix(self):
        """R as an N x N NumPy array (column convention: rho(h) = R h)."""
        self._require_built()
        return keras.ops.convert_to_numpy(self._matrix_tensor("float32")).astype("float64")

    def analytic_exponents(self):
        """log|eig(R)| sorted descending: the Lyapunov exponents of the
        weakly coupled network (coupling -> 0)."""
        moduli = np.abs(np.linalg.eigvals(self.matrix()))
        with np.errstate(divide="ignore"):
            return np.sort(np.log(moduli))[::-1]

    # ------------------------------------------------------------ serializing
    def get_config(self):
        return {}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


def apply_linear_form(form, h):
    """Apply a `linear_form()` to row states h (batch, N) with `keras.ops`:
    identity h, diagonal h * d, rotation h * a + swap_pairs(h) * b, dense
    h @ k."""
    kind = form[0]
    if kind == "identity":
        return h
    if kind == "diagonal":
        return h * form[1]
    if kind == "rotation":
        return h * form[1] + _swap_pairs(h) * form[2]
    if kind == "dense":
        return _ops.matmul(h, form[1])
    raise ValueError(f"Unknown linear form {kind!r}.")


def apply_linear_form_transpose(form, g):
    """The vector-Jacobian product g @ J_rho of a `linear_form()` (row
    convention): identity g, diagonal g * d, rotation g * a +
    swap_pairs(g * b), dense g @ k^T."""
    kind = form[0]
    if kind == "identity":
        return g
    if kind == "diagonal":
        return g * form[1]
    if kind == "rotation":
        return g * form[1] + _swap_pairs(g * form[2])
    if kind == "dense":
        return _ops.matmul(g, ops.transpose(form[1]))
    raise ValueError(f"Unknown linear form {kind!r}.")


def _swap_pairs(h):
    """(h0, h1, h2, h3, ...) -> (h1, h0, h3, h2, ...) along the last axis."""
    shape = ops.shape(h)
    pairs = ops.reshape(h, (-1, shape[-1] // 2, 2))
    return ops.reshape(ops.flip(pairs, axis=-1), shape)


class _ArrayInitializer(keras.initializers.Initializer):
    """Initializes a weight to a fixed array (the residual's drawn values)."""

    def __init__(self, value):
        self.value = np.asarray(value)

    def __call__(self, shape, dtype=None):
        return ops.cast(ops.convert_to_tensor(self.value), dtype or "float32")

    def get_config(self):
        return {"value": self.value.tolist()}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class Identity(Residual):
    """The critical residual rho(h) = h (R = I, every exponent 0).

    Example:

    >>> cell = kr.layers.WCRNNCell(64, residual=kr.residuals.Identity())
    """

    def apply(self, h):
        return h

    def linear_form(self, dtype=None):
        return ("identity",)

    def _matrix_tensor(self, dtype=None):
        return ops.eye(self.units, dtype=dtype or "float32")


@keras.saving.register_keras_serializable(package=_PACKAGE)
class Homogeneous(Residual):
    """rho(h) = r h: one memory timescale for all units.

    `radius < 1` is sub-critical (fading memory, exponents log r < 0),
    `radius = 1` critical, `radius > 1` super-critical.

    Args:
        radius: finite float >= 0.

    Example:

    >>> rho = kr.residuals.Homogeneous(0.95)
    """

    def __init__(self, radius=1.0):
        super().__init__()
        _check_nonnegative_finite("radius", radius)
        self.radius = float(radius)

    def _initial_values(self, units):
        return {"radius": np.float32(self.radius)}

    def apply(self, h):
        return h * self._param("radius", h.dtype)

    def linear_form(self, dtype=None):
        return ("diagonal", self._param("radius", dtype))

    def _matrix_tensor(self, dtype=None):
        return ops.eye(self.units, dtype=dtype or "float32") * self._param("radius", dtype)

    def get_config(self):
        return {"radius": self.radius}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class Heterogeneous(Residual):
    """rho(h) = diag(r) h: one memory timescale per unit.

    Args:
        radii: the N radii (finite, >= 0); must match the layer's units.
            When `None`, they are drawn uniformly from `radius_range`.
        radius_range: (low, high) to draw radii from, 0 <= low <= high.
        seed: seed of the draw (NumPy); `None` draws differently each build.

    Example:

    >>> rho = kr.residuals.Heterogeneous(radius_range=(0.8, 1.0), seed=0)
    """

    def __init__(self, radii=None, radius_range=(0.9, 1.0), seed=None):
        super().__init__()
        if radii is not None:
            _check_nonnegative_finite("radii", radii)
            radii = [float(r) for r in np.ravel(radii)]
        self.radii = radii
        self.radius_range = _check_range("radius_range", radius_range, nonnegative=True)
        if radii is None and self.radius_range is None:
            raise ValueError("Heterogeneous needs `radii` or `radius_range`; received neither.")
        self.seed = seed

    def _initial_values(self, units):
        if self.radii is not None:
            if len(self.radii) != units:
                raise ValueError(
                    f"Heterogeneous got {len(self.radii)} `radii` for a layer of "
                    f"units={units}; they must match."
                )
            radii = np.asarray(self.radii)
        else:
            lo, hi = self.radius_range
            radii = np.random.default_rng(self.seed).uniform(lo, hi, size=units)
        return {"radii": radii}

    def apply(self, h):
        return h * self._param("radii", h.dtype)

    def linear_form(self, dtype=None):
        return ("diagonal", self._param("radii", dtype))

    def _matrix_tensor(self, dtype=None):
        return ops.diag(self._param("radii", dtype))

    def analytic_exponents(self):
        self._require_built()
        radii = keras.ops.convert_to_numpy(self._param("radii")).astype("float64")
        with np.errstate(divide="ignore"):
            return np.sort(np.log(np.abs(radii)))[::-1]

    def get_config(self):
        return {"radii": self.radii, "radius_range": self.radius_range, "seed": self.seed}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class Rotational(Residual):
    """Block rotations: each pair of units (2i, 2i+1) turns by phi_i and
    scales by r_i, so R has eigenvalues r_i exp(+-i phi_i).

    A rotation at the data's characteristic frequency (2*pi/28 for
    pixel-wise MNIST, see `kr.dynamics.characteristic_frequency`) lets the
    state oscillate with the input. Needs an even number of units.

    Args:
        radius: radius of every block when `radius_range` is `None`
            (finite, >= 0).
        angle: rotation angle of every block, radians per step. When
            `None`, angles are drawn uniformly from `angle_range`.
        angle_range: (low, high) to draw one angle per block from
            (heterogeneous frequencies); `(0, pi)` when both `angle` and
            `angle_range` are `None`.
        radius_range: (low, high) to draw one radius per block from.
        seed: seed of the draws (NumPy).

    Example:

    >>> rho = kr.residuals.Rotational(angle=2 * np.pi / 28)
    """

    def __init__(self, radius=1.0, angle=None, angle_range=None, radius_range=None, seed=None):
        super().__init__()
        _check_nonnegative_finite("radius", radius)
        if angle is not None:
            _check_finite("angle", angle)
            if angle_range is not None:
                raise ValueError(
                    "Rotational takes `angle` or `angle_range`, not both; received "
                    f"angle={angle!r}, angle_range={angle_range!r}."
                )
        self.radius = float(radius)
        self.angle = None if angle is None else float(angle)
        self.angle_range = _check_range("angle_range", angle_range)
        self.radius_range = _check_range("radius_range", radius_range, nonnegative=True)
        self.seed = seed

    def _check_units(self, units):
        super()._check_units(units)
        if units % 2:
            raise ValueError(
                f"Rotational residual needs an even number of units (it rotates pairs); "
                f"received units={units}."
            )

    def _initial_values(self, units):
        rng = np.random.default_rng(self.seed)
        blocks = units // 2
        if self.angle is not None:
            angles = np.full(blocks, self.angle)
        else:
            lo, hi = self.angle_range or (0.0, math.pi)
            angles = rng.uniform(lo, hi, size=blocks)
        if self.radius_range is not None:
            radii = rng.uniform(*self.radius_range, size=blocks)
        else:
            radii = np.full(blocks, self.radius)
        return {"radii": radii, "angles": angles}

    def linear_form(self, dtype=None):
        r = self._param("radii", dtype)
        phi = self._param("angles", dtype)
        rc, rs = r * ops.cos(phi), r * ops.sin(phi)
        a = ops.reshape(ops.stack([rc, rc], axis=-1), (-1,))
        b = ops.reshape(ops.stack([-rs, rs], axis=-1), (-1,))
        return ("rotation", a, b)

    def apply(self, h):
        return apply_linear_form(self.linear_form(h.dtype), h)

    def _matrix_tensor(self, dtype=None):
        _, a, b = self.linear_form(dtype)
        n = self.units
        idx = np.arange(n)
        partner = idx ^ 1
        # R[i, i] = a_i; R[i, partner(i)] = b_i.
        eye = ops.eye(n, dtype=dtype or "float32")
        swap = ops.convert_to_tensor(np.eye(n, dtype="float32")[partner], dtype=dtype or "float32")
        return eye * a[:, None] + swap * b[:, None]

    def analytic_exponents(self):
        self._require_built()
        radii = keras.ops.convert_to_numpy(self._param("radii")).astype("float64")
        with np.errstate(divide="ignore"):
            return np.sort(np.log(np.abs(np.repeat(radii, 2))))[::-1]

    def get_config(self):
        return {
            "radius": self.radius,
            "angle": self.angle,
            "angle_range": self.angle_range,
            "radius_range": self.radius_range,
            "seed": self.seed,
        }


@keras.saving.register_keras_serializable(package=_PACKAGE)
class Dense(Residual):
    """A general linear residual R = scale * W0, W0 from a Keras initializer.

    Args:
        initializer: Keras initializer (name, config or instance) for W0;
            `"orthogonal"` by default (all |eig| = 1 before scaling).
        scale: finite float multiplying W0.
        seed: seed given to the initializer when it takes one.

    Example:

    >>> rho = kr.residuals.Dense("orthogonal", scale=0.9, seed=0)
    """

    def __init__(self, initializer="orthogonal", scale=1.0, seed=None):
        super().__init__()
        _check_finite("scale", scale)
        self.initializer = keras.initializers.get(initializer)
        self.scale = float(scale)
        self.seed = seed

    def _initial_values(self, units):
        config = keras.initializers.serialize(self.initializer)
        initializer = keras.initializers.deserialize(config)
        if self.seed is not None and hasattr(initializer, "seed"):
            initializer.seed = self.seed
        w0 = keras.ops.convert_to_numpy(initializer((units, units), dtype="float32"))
        # Stored transposed: the row-convention kernel K = R^T, rho(h) = h @ K.
        return {"kernel": (self.scale * w0).T}

    def apply(self, h):
        return _ops.matmul(h, self._param("kernel", h.dtype))

    def linear_form(self, dtype=None):
        return ("dense", self._param("kernel", dtype))

    def _matrix_tensor(self, dtype=None):
        return ops.transpose(self._param("kernel", dtype))

    def get_config(self):
        return {
            "initializer": keras.initializers.serialize(self.initializer),
            "scale": self.scale,
            "seed": self.seed,
        }


@keras.saving.register_keras_serializable(package=_PACKAGE)
class Nonlinear(Residual):
    """rho(h) = R phi(h): a linear residual after a nonlinearity.

    Its Jacobian R diag(phi'(h)) depends on the state, so it has no
    `matrix()`; `analytic_exponents()` gives the exponents at h = 0 when
    phi'(0) = 1 (tanh, linear).

    Args:
        base: a linear residual (instance, name or config), `"identity"`
            by default.
        activation: phi; one of `tanh`, `sigmoid`, `relu`, `linear`.

    Example:

    >>> rho = kr.residuals.Nonlinear(kr.residuals.Homogeneous(0.99), "tanh")
    """

    linear = False

    def __init__(self, base="identity", activation="tanh"):
        super().__init__()
        base = get(base)
        if base is None or not base.linear:
            raise TypeError(
                "Argument `base` of Nonlinear must be a linear residual (Identity, "
                f"Homogeneous, Heterogeneous, Rotational, Dense); received base={base!r}."
            )
        self.base = base
        self.activation = keras.activations.get(activation)
        self._derivative = _activations.derivative(self.activation)
        if self._derivative is None:
            raise ValueError(
                f"Argument `activation` of Nonlinear must be one of "
                f"{sorted(_activations.DERIVATIVES)}; received activation={activation!r}."
            )

    def build(self, units, layer=None, trainable=False):
        self.base.build(units, layer=layer, trainable=trainable)
        self.units = int(units)
        self.built = True

    def apply(self, h):
        return self.base.apply(self.activation(h))

    def linear_form(self, dtype=None):
        raise TypeError("Nonlinear residual has no linear form.")

    def prepare(self, dtype=None):
        base = self.base.prepare(dtype)
        return lambda h: base(self.activation(h))

    def jacobian(self, h):
        self._require_built()
        y = self.activation(h)
        slope = self._derivative(h, y)
        R = self.base._matrix_tensor(h.dtype)
        return R[None, :, :] * slope[:, None, :]

    def matrix(self):
        raise TypeError(
            "Nonlinear residual has no constant matrix (its Jacobian depends on "
            "the state); use `jacobian(h)`, or `base.matrix()`."
        )

    def analytic_exponents(self):
        """Exponents of the linearisation at h = 0 (R diag(phi'(0)))."""
        self._require_built()
        zero = ops.zeros((1, self.units))
        J = keras.ops.convert_to_numpy(self.jacobian(zero))[0].astype("float64")
        with np.errstate(divide="ignore"):
            return np.sort(np.log(np.abs(np.linalg.eigvals(J))))[::-1]

    def get_config(self):
        return {
            "base": keras.saving.serialize_keras_object(self.base),
            "activation": keras.activations.serialize(self.activation),
        }


_NAMES = {"identity": Identity}


def get(identifier):
    """Resolve a residual: an instance (copied, so layers never share one),
    a serialized config, `"identity"`, or `None` (no residual, rho = 0).

    Raises:
        ValueError: for an unknown name. TypeError: for another type.
    """
    if identifier is None:
        return None
    if isinstance(identifier, Residual):
        return identifier.__class__.from_config(identifier.get_config())
    if isinstance(identifier, str):
        key = identifier.lower()
        if key == "none":
            return None
        if key in _NAMES:
            return _NAMES[key]()
        raise ValueError(
            f"Unknown residual {identifier!r}; allowed strings are 'identity' and "
            "'none' (or pass an instance such as Homogeneous(0.9), or None)."
        )
    if isinstance(identifier, dict):
        residual = keras.saving.deserialize_keras_object(identifier)
        if not isinstance(residual, Residual):
            raise TypeError(f"Config {identifier!r} does not describe a residual.")
        return residual
    raise TypeError(
        "A residual must be a Residual instance, its config, 'identity' or None; "
        f"received {identifier!r} of type {type(identifier).__name__}."
    )


def serialize(residual):
    return None if residual is None else keras.saving.serialize_keras_object(residual)


__all__ = [
    "Residual",
    "Identity",
    "Homogeneous",
    "Heterogeneous",
    "Rotational",
    "Dense",
    "Nonlinear",
    "get",
    "serialize",
    "apply_linear_form",
    "apply_linear_form_transpose",
]
