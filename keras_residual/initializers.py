"""Initializers: the Elman-network extension of weakly coupled residuals."""

import keras

from keras_residual import _validation as check
from keras_residual import residuals as residuals_lib


@keras.saving.register_keras_serializable(package="keras_residual")
class WeaklyCoupledResidual(keras.initializers.Initializer):
    """Recurrent kernel R + coupling * W0 for `keras.layers.SimpleRNN`.

    An Elman network `h_t = sigma(U^T x_t + W^T h_{t-1} + b)` initialised
    with `W^T = R + gamma W0` starts as a weakly coupled residual network
    whose residual sits inside the activation. In Keras' row convention
    (`h @ recurrent_kernel`) the returned kernel is `R^T + gamma W0`.

    Args:
        residual: residual map R (a `kr.residuals` instance or config, or
            `"identity"`); it must be linear.
        coupling: gamma, finite and >= 0.
        base: Keras initializer for W0 (`"orthogonal"` by default).
        seed: seed for `base` when it takes one.

    Example:

    >>> init = kr.initializers.WeaklyCoupledResidual(
    ...     kr.residuals.Rotational(angle=2 * np.pi / 28), coupling=0.1)
    >>> rnn = keras.layers.SimpleRNN(8, recurrent_initializer=init)
    >>> x = np.random.default_rng(0).normal(size=(2, 28, 1)).astype("float32")
    >>> tuple(rnn(x).shape)
    (2, 8)
    >>> no_coupling = kr.initializers.WeaklyCoupledResidual("identity", coupling=0.0)
    >>> np.allclose(ops.convert_to_numpy(no_coupling((4, 4))), np.eye(4))  # R^T = I
    True
    """

    def __init__(self, residual="identity", coupling=0.1, base="orthogonal", seed=None):
        residual = residuals_lib.get(residual)
        if residual is None or not residual.linear:
            raise TypeError(
                "Argument `residual` of WeaklyCoupledResidual must be a linear residual; "
                f"received residual={residual!r}."
            )
        self.residual = residual
        self.coupling = check.nonnegative_real("coupling", coupling)
        self.base = keras.initializers.get(base)
        self.seed = check.seed("seed", seed)

    def __call__(self, shape, dtype=None):
        if len(shape) != 2 or shape[0] != shape[1]:
            raise ValueError(
                "WeaklyCoupledResidual initializes square recurrent kernels; "
                f"received shape={tuple(shape)}."
            )
        residual = residuals_lib.get(self.residual)
        residual.build(int(shape[0]))
        base = check.fresh_initializer(self.base, self.seed)
        w0 = keras.ops.convert_to_numpy(base(shape, dtype="float32"))
        kernel = residual.matrix().T + self.coupling * w0
        return keras.ops.convert_to_tensor(kernel, dtype=dtype or "float32")

    def get_config(self):
        return {
            "residual": residuals_lib.serialize(self.residual),
            "coupling": self.coupling,
            "base": keras.initializers.serialize(self.base),
            "seed": self.seed,
        }
