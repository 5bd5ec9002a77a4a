"""keras_residual.datasets."""
