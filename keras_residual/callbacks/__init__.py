"""keras_residual.callbacks."""
