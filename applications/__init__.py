"""Prebuilt models, imported as `keras_residual.applications`.

This folder sits at the top of the repository and is installed as the
`keras_residual.applications` package (see `package-dir` in pyproject.toml),
mirroring `keras.applications`.
"""

__all__ = []
