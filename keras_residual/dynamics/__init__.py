"""keras_residual.dynamics: Lyapunov spectra and their diagnostics, ReLU survival."""

from keras_residual.dynamics.frequency import characteristic_frequency
from keras_residual.dynamics.lyapunov import CovariantVectors
from keras_residual.dynamics.lyapunov import LyapunovSpectrum
from keras_residual.dynamics.lyapunov import MapCell
from keras_residual.dynamics.lyapunov import MaxExponent
from keras_residual.dynamics.lyapunov import covariant_lyapunov_vectors
from keras_residual.dynamics.lyapunov import kaplan_yorke_dimension
from keras_residual.dynamics.lyapunov import lyapunov_spectrum
from keras_residual.dynamics.lyapunov import max_exponent_direct
from keras_residual.dynamics.lyapunov import register_tangent
from keras_residual.dynamics.lyapunov import tangent_map
from keras_residual.dynamics.lyapunov_numpy import lyapunov_spectrum_numpy
from keras_residual.dynamics.plotting import plot_convergence
from keras_residual.dynamics.plotting import plot_spectra

from keras_residual.dynamics.survival import cantelli_lower_bound
from keras_residual.dynamics.survival import plot_survival
from keras_residual.dynamics.survival import relu_survival
from keras_residual.dynamics.survival import survival_bounds
