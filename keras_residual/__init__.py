"""keras-residual: residual connections as research tools for Keras 3.

`import keras_residual as kr`, then:

- `kr.residuals`: residual maps rho of weakly coupled residual RNNs.
- `kr.initializers`: `WeaklyCoupledResidual`, the Elman-network extension.
- `kr.layers`: `WCRNNCell`, the fused `WCRNN` layer (and the PNNH blocks).
- `kr.dynamics`, `kr.callbacks`: Lyapunov spectra and ReLU survival.
- `kr.datasets`: sequential MNIST and synthetic tasks.
- `kr.applications`: ResNet and ViT families (source in the top-level
  `applications/` folder).
"""

from keras_residual import residuals
from keras_residual import initializers
from keras_residual import layers
from keras_residual import dynamics
from keras_residual import callbacks
from keras_residual import datasets
from keras_residual import applications

__version__ = "0.1.0"

__all__ = [
    "residuals",
    "initializers",
    "layers",
    "dynamics",
    "callbacks",
    "datasets",
    "applications",
    "__version__",
]
