"""keras_residual.dynamics."""
