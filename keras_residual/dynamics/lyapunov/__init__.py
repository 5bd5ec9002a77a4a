"""The Lyapunov engine: spectra, their diagnostics, and the differentiable layer.

Named parts, each a file a reader can hold in mind:

- `carry.py`: `Carry`, what the loop hands from step to step (state, frame,
  the compensated log-sum, the QR schedule's counters).
- `qr.py`: the QR with its sign fix (Householder, CholeskyQR2), on `keras.ops`.
- `loop.py`: one step of the QR loop, its schedule ("auto" intervals,
  history windows), and the compiled runners.
- `cells.py`: the cell plumbing (resolve a layer's cell, the state layout,
  initial frame and states, a copy in another dtype, checked first steps)
  and `MapCell`.
- `tangents.py`: tangent maps `J_t Q` of cells (`tangent_map`,
  `register_tangent`).
- `spectrum.py`: `lyapunov_spectrum`; `result.py`: `LyapunovSpectrum`
  (derived figures, history, spread over sequences).
- `layer.py`: `LyapunovExponents`, the differentiable layer (gradient
  flossing); also `kr.layers.LyapunovExponents`.
- `direct.py`: `max_exponent_direct` (two nearby trajectories, no Jacobian).
- `covariant.py`: `covariant_lyapunov_vectors` (Ginelli's method).
- `_backends/`: what differs by backend (autodiff tangents, runners, a
  Cholesky that cannot raise, compute scopes).

The float64 NumPy reference (`kr.dynamics.lyapunov_spectrum_numpy`) is kept
apart from all of it, in `keras_residual/dynamics/lyapunov_numpy.py`: it is
the oracle the engine is tested against.
"""

from keras_residual.dynamics.lyapunov.cells import MapCell
from keras_residual.dynamics.lyapunov.covariant import CovariantVectors
from keras_residual.dynamics.lyapunov.covariant import covariant_lyapunov_vectors
from keras_residual.dynamics.lyapunov.direct import MaxExponent
from keras_residual.dynamics.lyapunov.direct import max_exponent_direct
from keras_residual.dynamics.lyapunov.layer import LyapunovExponents
from keras_residual.dynamics.lyapunov.result import LyapunovSpectrum
from keras_residual.dynamics.lyapunov.result import kaplan_yorke_dimension
from keras_residual.dynamics.lyapunov.spectrum import lyapunov_spectrum
from keras_residual.dynamics.lyapunov.tangents import register_tangent
from keras_residual.dynamics.lyapunov.tangents import tangent_map

__all__ = [
    "CovariantVectors",
    "LyapunovExponents",
    "LyapunovSpectrum",
    "MapCell",
    "MaxExponent",
    "covariant_lyapunov_vectors",
    "kaplan_yorke_dimension",
    "lyapunov_spectrum",
    "max_exponent_direct",
    "register_tangent",
    "tangent_map",
]
