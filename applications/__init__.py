"""Prebuilt models, imported as `keras_residual.applications`.

This folder sits at the top of the repository and is installed as the
`keras_residual.applications` package (see `package-dir` in pyproject.toml),
mirroring `keras.applications`.
"""

from keras_residual.applications import cifar_resnet
from keras_residual.applications import resnet
from keras_residual.applications.resnet import ResNet18
from keras_residual.applications.resnet import ResNet34
from keras_residual.applications.resnet import ResNet50
from keras_residual.applications.resnet import ResNet101
from keras_residual.applications.resnet import ResNet152
from keras_residual.applications.resnet import PNNHResNet18
from keras_residual.applications.resnet import PNNHResNet34
from keras_residual.applications.resnet import PNNHResNet50
from keras_residual.applications.resnet import PNNHResNet101
from keras_residual.applications.resnet import PNNHResNet152
from keras_residual.applications.resnet import PlainResNet18
from keras_residual.applications.resnet import PlainResNet34
from keras_residual.applications.resnet import PlainResNet50
from keras_residual.applications.resnet import PlainResNet101
from keras_residual.applications.resnet import PlainResNet152
from keras_residual.applications.cifar_resnet import ResNet20
from keras_residual.applications.cifar_resnet import ResNet32
from keras_residual.applications.cifar_resnet import ResNet44
from keras_residual.applications.cifar_resnet import ResNet56
from keras_residual.applications.cifar_resnet import ResNet110
from keras_residual.applications.cifar_resnet import PNNHResNet20
from keras_residual.applications.cifar_resnet import PNNHResNet32
from keras_residual.applications.cifar_resnet import PNNHResNet44
from keras_residual.applications.cifar_resnet import PNNHResNet56
from keras_residual.applications.cifar_resnet import PNNHResNet110
from keras_residual.applications.cifar_resnet import PlainResNet20
from keras_residual.applications.cifar_resnet import PlainResNet32
from keras_residual.applications.cifar_resnet import PlainResNet44
from keras_residual.applications.cifar_resnet import PlainResNet56
from keras_residual.applications.cifar_resnet import PlainResNet110
from keras_residual.applications import vit
from keras_residual.applications.vit import ViTTiny16
from keras_residual.applications.vit import ViTSmall16
from keras_residual.applications.vit import ViTBase16
from keras_residual.applications.vit import ViTLarge16
from keras_residual.applications.vit import PNNHViTTiny16
from keras_residual.applications.vit import PNNHViTSmall16
from keras_residual.applications.vit import PNNHViTBase16
from keras_residual.applications.vit import PNNHViTLarge16
from keras_residual.applications.vit import PlainViTTiny16
from keras_residual.applications.vit import PlainViTSmall16
from keras_residual.applications.vit import PlainViTBase16
from keras_residual.applications.vit import PlainViTLarge16

__all__ = [
    "vit",
    "ViTTiny16",
    "ViTSmall16",
    "ViTBase16",
    "ViTLarge16",
    "PNNHViTTiny16",
    "PNNHViTSmall16",
    "PNNHViTBase16",
    "PNNHViTLarge16",
    "PlainViTTiny16",
    "PlainViTSmall16",
    "PlainViTBase16",
    "PlainViTLarge16",
]
__all__ += [
    "resnet",
    "cifar_resnet",
    "ResNet18",
    "ResNet34",
    "ResNet50",
    "ResNet101",
    "ResNet152",
    "PNNHResNet18",
    "PNNHResNet34",
    "PNNHResNet50",
    "PNNHResNet101",
    "PNNHResNet152",
    "PlainResNet18",
    "PlainResNet34",
    "PlainResNet50",
    "PlainResNet101",
    "PlainResNet152",
    "ResNet20",
    "ResNet32",
    "ResNet44",
    "ResNet56",
    "ResNet110",
    "PNNHResNet20",
    "PNNHResNet32",
    "PNNHResNet44",
    "PNNHResNet56",
    "PNNHResNet110",
    "PlainResNet20",
    "PlainResNet32",
    "PlainResNet44",
    "PlainResNet56",
    "PlainResNet110",
]
