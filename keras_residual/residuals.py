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

What the step, its tangent and its backward pass need of a residual is its
*form* (`residual.form(dtype)`): one small object per kind of map — `Zero`
(no residual), `IdentityForm`, `DiagonalForm` (d), `RotationForm` (a, b on
unit pairs), `DenseForm` (R^T) and `NonlinearForm` (a linear form after phi)
— with the parameters read once, and

    apply(h)               rho(h) for row states h (batch, N)
    apply_transpose(g, h)  g @ J_rho(h), the vector-Jacobian product
    apply_columns(Q, h)    J_rho(h) Q for columns Q (batch, N, k)
    matrix(units)          R, (N, N), for a linear form
    tensors / replace(ts)  its parameters, and the same form on other tensors
                           (to cross a compiled function's boundary)
    key                    what a compiled loop depends on besides the
                           tensors (the kinds of form, nested ones included,
                           and a nonlinear form's activation): the one cache
                           key of every fused kernel

The WCRNN cell, the fused kernels and the Lyapunov code take a form and
never branch on the residual's class: a new kind of residual is a new
`Residual` with a new form, here.
"""

import math

import keras
import numpy as np
from keras import ops

from keras_residual import _activations
from keras_residual import _ops
from keras_residual import _validation as check

_PACKAGE = "keras_residual"


class Residual:
    """Base class of residual maps.

    Subclasses define `_initial_values(units)` (NumPy arrays of their
    parameters) and `form(dtype)`; `apply`, `jacobian` and `matrix` follow
    from the form.

    Example:

    >>> rho = kr.residuals.Heterogeneous(radii=[0.9, 0.5])
    >>> layer = kr.layers.WCRNN(2, residual=rho)
    >>> layer.build((None, 3, 1))
    >>> np.round(layer.cell.residual.analytic_exponents(), 4).tolist()  # log |eig(R)|
    [-0.1054, -0.6931]
    """

    linear = True

    def __init__(self):
        self.units = None
        self.built = False
        self._params = {}

    # ------------------------------------------------------------------ build
    def _check_units(self, units):
        return check.positive_int("units", units)

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
        self.units = self._check_units(units)
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
    def form(self, dtype=None):
        """The map as a `ResidualForm`, its parameters read once (in `dtype`):
        what the WCRNN step, the fused kernels and the Lyapunov code apply."""
        raise NotImplementedError

    def apply(self, h):
        """rho(h) for a batch of states `h` of shape (batch, units)."""
        self._require_built()
        return self.form(h.dtype).apply(h)

    def jacobian(self, h):
        """d rho(h) / d h as a (batch, N, N) tensor, J[b, i, j] = d rho_i / d h_j."""
        self._require_built()
        return self.form(h.dtype).jacobian(h)

    def matrix(self):
        """R as an N x N NumPy array (column convention: rho(h) = R h)."""
        self._require_built()
        R = self.form("float32").matrix(self.units, "float32")
        return keras.ops.convert_to_numpy(R).astype("float64")

    def analytic_exponents(self):
        """log|eig(R)| sorted descending: the Lyapunov exponents of the
        weakly coupled network (coupling -> 0)."""
        moduli = np.abs(np.linalg.eigvals(self.matrix()))
        with np.errstate(divide="ignore"):
            return np.sort(np.log(moduli))[::-1]

    # ------------------------------------------------------------ serializing
    def clone(self):
        """An unbuilt copy with the same configuration: what `get` gives each
        layer, so that layers never share one."""
        return self.__class__.from_config(self.get_config())

    def get_config(self):
        return {}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


# --------------------------------------------------------------------------
# Forms: the residual as the step, its tangent and its backward pass apply it


def _swap_pairs(h, axis=-1):
    """(h0, h1, h2, h3, ...) -> (h1, h0, h3, h2, ...) along `axis`.

    One gather by the constant permutation `i ^ 1`: in a compiled loop it
    costs less than a reshape, flip and reshape (a fused WCRNN training step
    with a rotation, T = 784, 128 units, 2-core Intel Xeon: TensorFlow 94 ->
    83 ms, JAX 97 -> 94 ms; `RNN(WCRNNCell)` on JAX 127 -> 120 ms).
    """
    axis = axis % len(h.shape)
    size = h.shape[axis]
    if size is None:  # a width unknown when traced (TensorFlow's relaxed shapes)
        shape = ops.shape(h)
        split = tuple(shape[:axis]) + (shape[axis] // 2, 2) + tuple(shape[axis + 1:])
        return ops.reshape(ops.flip(ops.reshape(h, split), axis=axis + 1), shape)
    return ops.take(h, np.arange(size) ^ 1, axis=axis)


class ResidualForm:
    """Base class of residual forms (see the module docstring).

    Attributes:
        tensors: the form's parameters, a tuple of tensors.
        linear: whether the map is linear (its Jacobian constant).
        is_zero: whether the map is rho = 0 (no residual).

    Example:

    >>> layer = kr.layers.WCRNN(4, residual=kr.residuals.Homogeneous(0.5))
    >>> layer.build((None, 3, 2))
    >>> form = layer.cell.residual.form("float32")
    >>> type(form).__name__, form.linear
    ('DiagonalForm', True)
    >>> ops.convert_to_numpy(form.apply(ops.ones((1, 4)))).tolist()
    [[0.5, 0.5, 0.5, 0.5]]
    """

    linear = True
    is_zero = False
    # Whether `apply` costs several elementwise ops where one (N, N) matmul
    # would do: a loop that pays per op (torch eager, a TensorFlow graph
    # while-loop, whose gradient of a gather is costly) steps such a form as
    # `as_dense()`; see `_wcrnn_kernels.cell_dense_forms`.
    prefers_dense = False

    def __init__(self, *tensors):
        self.tensors = tuple(tensors)

    def replace(self, tensors):
        """The same kind of form on other tensors (e.g. traced ones)."""
        return type(self)(*tensors)

    @property
    def key(self):
        """A hashable description of everything but the tensors: two forms
        with equal keys differ only in their tensors' values, so a loop
        compiled for one (with the tensors as arguments) serves the other."""
        return (type(self).__name__,)

    def apply(self, h):
        """rho(h) for row states `h` of shape (batch, N)."""
        raise NotImplementedError

    def apply_add(self, h, y, scale):
        """`rho(h) + scale * y` (a step's new state from its activation `y`):
        `apply` and one add, or one op where a form has one (a product's
        `addmm` on torch)."""
        return _ops.add_scaled(self.apply(h), y, scale)

    def apply_transpose(self, g, h=None):
        """`g @ J_rho(h)`: the vector-Jacobian product, for rows `g` (batch, N)."""
        raise NotImplementedError

    def apply_columns(self, Q, h=None):
        """`J_rho(h) Q` for a batch of column blocks `Q` (batch, N, k)."""
        raise NotImplementedError

    def matrix(self, units, dtype="float32"):
        """R as an (N, N) tensor (column convention, `rho(h) = R h`)."""
        raise NotImplementedError

    def as_dense(self, units, dtype="float32"):
        """The same linear map as a `DenseForm` (`rho(h) = h @ R^T`)."""
        return DenseForm(ops.transpose(self.matrix(units, dtype)))

    def jacobian(self, h):
        """`J_rho(h)` as a (batch, N, N) tensor."""
        units = h.shape[-1]
        R = self.matrix(units, h.dtype)
        return ops.broadcast_to(R[None], (ops.shape(h)[0], units, units))


class Zero(ResidualForm):
    """No residual: rho = 0.

    Example:

    >>> ops.convert_to_numpy(kr.residuals.Zero().apply(ops.ones((1, 2)))).tolist()
    [[0.0, 0.0]]
    """

    is_zero = True

    def apply(self, h):
        return ops.zeros_like(h)

    def apply_add(self, h, y, scale):
        return _ops.add_scaled(None, y, scale)

    def apply_transpose(self, g, h=None):
        return ops.zeros_like(g)

    def apply_columns(self, Q, h=None):
        return ops.zeros_like(Q)

    def matrix(self, units, dtype="float32"):
        return ops.zeros((units, units), dtype=dtype)


class IdentityForm(ResidualForm):
    """rho(h) = h.

    Example:

    >>> h = ops.convert_to_tensor([[1.0, 2.0]])
    >>> ops.convert_to_numpy(kr.residuals.IdentityForm().apply(h)).tolist()
    [[1.0, 2.0]]
    """

    def apply(self, h):
        return h

    def apply_transpose(self, g, h=None):
        return g

    def apply_columns(self, Q, h=None):
        return Q

    def matrix(self, units, dtype="float32"):
        return ops.eye(units, dtype=dtype)


class DiagonalForm(ResidualForm):
    """rho(h) = h * d, with d of shape (N,) or a scalar.

    Example:

    >>> form = kr.residuals.DiagonalForm(ops.convert_to_tensor([0.5, 2.0]))
    >>> ops.convert_to_numpy(form.matrix(2)).tolist()
    [[0.5, 0.0], [0.0, 2.0]]
    """

    def apply(self, h):
        return h * self.tensors[0]

    def apply_transpose(self, g, h=None):
        return g * self.tensors[0]

    def apply_columns(self, Q, h=None):
        d = self.tensors[0]
        return Q * (d[:, None] if len(d.shape) else d)

    def matrix(self, units, dtype="float32"):
        d = ops.cast(self.tensors[0], dtype)
        return ops.eye(units, dtype=dtype) * (d[:, None] if len(d.shape) else d)


class RotationForm(ResidualForm):
    """rho(h)_i = a_i h_i + b_i h_partner(i) on unit pairs (2j, 2j + 1):
    `h * a + swap_pairs(h) * b`.

    Example:

    A quarter turn of one pair (a = cos, b = -sin, sin):

    >>> form = kr.residuals.RotationForm(
    ...     ops.convert_to_tensor([0.0, 0.0]), ops.convert_to_tensor([-1.0, 1.0]))
    >>> ops.convert_to_numpy(form.apply(ops.convert_to_tensor([[1.0, 0.0]]))).tolist()
    [[0.0, 1.0]]
    """

    prefers_dense = True  # a multiply, a pair swap (a gather), a multiply, an add

    def apply(self, h):
        a, b = self.tensors
        return h * a + _swap_pairs(h) * b

    def apply_transpose(self, g, h=None):
        a, b = self.tensors
        return g * a + _swap_pairs(g * b)

    def apply_columns(self, Q, h=None):
        a, b = self.tensors
        return Q * a[:, None] + _swap_pairs(Q, axis=-2) * b[:, None]

    def matrix(self, units, dtype="float32"):
        a, b = (ops.cast(t, dtype) for t in self.tensors)
        swap = ops.convert_to_tensor(np.eye(units)[np.arange(units) ^ 1], dtype=dtype)
        # R[i, i] = a_i; R[i, partner(i)] = b_i.
        return ops.eye(units, dtype=dtype) * a[:, None] + swap * b[:, None]


class DenseForm(ResidualForm):
    """rho(h) = h @ K with K = R^T (Keras' row convention).

    Example:

    >>> form = kr.residuals.DenseForm(ops.convert_to_tensor([[0.0, 1.0], [0.0, 0.0]]))
    >>> ops.convert_to_numpy(form.matrix(2)).tolist()  # R = K^T
    [[0.0, 0.0], [1.0, 0.0]]
    """

    def apply(self, h):
        return _ops.matmul(h, self.tensors[0])

    def apply_add(self, h, y, scale):
        return _ops.matmul_add(h, self.tensors[0], y, scale)

    def apply_transpose(self, g, h=None):
        return _ops.matmul(g, ops.transpose(self.tensors[0]))

    def apply_columns(self, Q, h=None):
        return ops.einsum("ji,bjk->bik", self.tensors[0], Q)

    def matrix(self, units, dtype="float32"):
        return ops.transpose(ops.cast(self.tensors[0], dtype))


class NonlinearForm(ResidualForm):
    """rho(h) = base(phi(h)) for a linear base form; J_rho(h) = R diag(phi'(h)).

    Example:

    >>> layer = kr.layers.WCRNN(2, residual=kr.residuals.Nonlinear(kr.residuals.Identity()))
    >>> layer.build((None, 3, 1))
    >>> form = layer.cell.residual.form("float32")
    >>> value = ops.convert_to_numpy(form.apply(ops.ones((1, 2)))).astype("float64")
    >>> form.linear, np.round(value, 4).tolist()  # tanh(1)
    (False, [[0.7616, 0.7616]])
    """

    linear = False

    def __init__(self, base, activation, derivative):
        super().__init__(*base.tensors)
        self.base = base
        self.activation = activation
        self.derivative = derivative

    def replace(self, tensors):
        return NonlinearForm(self.base.replace(tensors), self.activation, self.derivative)

    @property
    def key(self):
        return (type(self).__name__, self.base.key, _activations.name_of(self.activation))

    def _slope(self, h):
        return self.derivative(h, self.activation(h))

    def apply_add(self, h, y, scale):
        return self.base.apply_add(self.activation(h), y, scale)

    def apply(self, h):
        return self.base.apply(self.activation(h))

    def apply_transpose(self, g, h=None):
        return self._slope(h) * self.base.apply_transpose(g)

    def apply_columns(self, Q, h=None):
        return self.base.apply_columns(self._slope(h)[:, :, None] * Q)

    def matrix(self, units, dtype="float32"):
        raise TypeError(
            "Nonlinear residual has no constant matrix (its Jacobian depends on "
            "the state); use `jacobian(h)`, or `base.matrix()`."
        )

    def jacobian(self, h):
        R = self.base.matrix(h.shape[-1], h.dtype)
        return R[None, :, :] * self._slope(h)[:, None, :]


def form_of(residual, dtype=None):
    """The form of a residual (`Zero()` for `None`), parameters in `dtype`."""
    return Zero() if residual is None else residual.form(dtype)


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

    def form(self, dtype=None):
        return IdentityForm()


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
        self.radius = check.nonnegative_real("radius", radius)

    def _initial_values(self, units):
        return {"radius": np.float32(self.radius)}

    def form(self, dtype=None):
        return DiagonalForm(self._param("radius", dtype))

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
            radii = check.reals("radii", radii, minimum=0.0)
        self.radii = radii
        self.radius_range = check.real_pair(
            "radius_range", radius_range, minimum=0.0, allow_none=True
        )
        if radii is None and self.radius_range is None:
            raise ValueError("Heterogeneous needs `radii` or `radius_range`; received neither.")
        self.seed = check.seed("seed", seed)

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

    def form(self, dtype=None):
        return DiagonalForm(self._param("radii", dtype))

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
        self.radius = check.nonnegative_real("radius", radius)
        self.angle = check.real("angle", angle, allow_none=True)
        if self.angle is not None and angle_range is not None:
            raise ValueError(
                "Rotational takes `angle` or `angle_range`, not both; received "
                f"angle={angle!r}, angle_range={angle_range!r}."
            )
        self.angle_range = check.real_pair("angle_range", angle_range, allow_none=True)
        self.radius_range = check.real_pair(
            "radius_range", radius_range, minimum=0.0, allow_none=True
        )
        self.seed = check.seed("seed", seed)

    def _check_units(self, units):
        units = super()._check_units(units)
        if units % 2:
            raise ValueError(
                f"Rotational residual needs an even number of units (it rotates pairs); "
                f"received units={units}."
            )
        return units

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

    def form(self, dtype=None):
        r = self._param("radii", dtype)
        phi = self._param("angles", dtype)
        rc, rs = r * ops.cos(phi), r * ops.sin(phi)
        a = ops.reshape(ops.stack([rc, rc], axis=-1), (-1,))
        b = ops.reshape(ops.stack([-rs, rs], axis=-1), (-1,))
        return RotationForm(a, b)

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
        self.initializer = keras.initializers.get(initializer)
        self.scale = check.real("scale", scale)
        self.seed = check.seed("seed", seed)

    def _initial_values(self, units):
        initializer = check.fresh_initializer(self.initializer, self.seed)
        w0 = keras.ops.convert_to_numpy(initializer((units, units), dtype="float32"))
        # Stored transposed: the row-convention kernel K = R^T, rho(h) = h @ K.
        return {"kernel": (self.scale * w0).T}

    def form(self, dtype=None):
        return DenseForm(self._param("kernel", dtype))

    def clone(self):
        # Not through get_config: Keras' serialize imports TensorFlow when it
        # is installed (+0.5 GB on a JAX or PyTorch process) to test for a
        # TensorShape; an initializer clones from its plain config.
        return Dense(self.initializer.clone(), self.scale, self.seed)

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

    def form(self, dtype=None):
        return NonlinearForm(self.base.form(dtype), self.activation, self._derivative)

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

    def clone(self):
        # Not through get_config (see Dense.clone); `Nonlinear` copies its base.
        return Nonlinear(self.base, self.activation)

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
        return identifier.clone()
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
    "form_of",
    "ResidualForm",
    "Zero",
    "IdentityForm",
    "DiagonalForm",
    "RotationForm",
    "DenseForm",
    "NonlinearForm",
]
