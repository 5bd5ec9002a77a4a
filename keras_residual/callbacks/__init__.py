"""keras_residual.callbacks."""

from keras_residual.callbacks.lyapunov_callback import LyapunovCallback

from keras_residual.callbacks.relu_survival_callback import ReLUSurvivalCallback
from keras_residual.callbacks.gradient_flossing import GradientFlossing
