"""Models of `kr.applications` in the Keras ecosystem: augmentation layers,
keras-cv in a tf.data pipeline, and use as a backbone."""

import keras
import numpy as np
import pytest

import keras_residual as kr


def _data(n=8, size=32, classes=10, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((n, size, size, 3)).astype("float32"), rng.integers(0, classes, n)


def test_trains_behind_rand_augment_and_mix_up_in_tf_data():
    # Keras' augmentation layers run in a tf.data pipeline under every backend.
    import tensorflow as tf  # tf.data needs tensorflow (installed by the `all` extra)
    images, labels = _data()
    rand_augment = keras.layers.RandAugment(value_range=(0, 1), seed=0)
    mix_up = keras.layers.MixUp(alpha=0.4, seed=0)

    def augment(batch):
        mixed = mix_up({"images": rand_augment(batch["images"]), "labels": batch["labels"]})
        return mixed["images"], mixed["labels"]

    one_hot = np.eye(10, dtype="float32")[labels]
    dataset = (
        tf.data.Dataset.from_tensor_slices({"images": images, "labels": one_hot})
        .batch(4)
        .map(augment)
    )
    augmented, soft = next(iter(dataset))
    augmented, soft = np.asarray(augmented), np.asarray(soft)
    assert augmented.shape == (4, 32, 32, 3)
    assert not np.allclose(augmented, images[:4]), "the pipeline left the images unchanged"
    np.testing.assert_allclose(soft.sum(axis=1), 1.0, atol=1e-5)
    assert np.any((soft > 1e-3) & (soft < 1 - 1e-3)), "MixUp left the labels one-hot"
    keras.utils.set_random_seed(0)
    model = kr.applications.PNNHResNet20(input_shape=(32, 32, 3), classes=10)
    model.compile(keras.optimizers.SGD(0.01), "categorical_crossentropy")
    history = model.fit(dataset, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])


@pytest.mark.only_backend(
    "tensorflow",
    reason="keras-cv's augmentation layers run in a tf.data pipeline on the tensorflow backend",
)
def test_trains_behind_keras_cv_in_tf_data():
    import keras_cv  # pip install 'keras-residual[cv]' (the `all` extra installs it)
    import tensorflow as tf

    images, labels = _data()
    augment = keras_cv.layers.RandAugment(value_range=(0, 1), seed=0)
    dataset = (
        tf.data.Dataset.from_tensor_slices((images, labels))
        .batch(4)
        .map(lambda x, y: (augment(x, training=True), y))
    )
    keras.utils.set_random_seed(0)
    model = kr.applications.ResNet20(input_shape=(32, 32, 3), classes=10)
    model.compile(keras.optimizers.SGD(0.01), "sparse_categorical_crossentropy")
    history = model.fit(dataset, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])


@pytest.mark.parametrize("connection", ["residual", "pnnh", "plain"])
def test_feature_maps_serve_as_a_backbone(connection):
    images, labels = _data(n=4)
    keras.utils.set_random_seed(0)
    backbone = kr.applications.ResNet20(
        include_top=False, pooling=None, input_shape=(32, 32, 3), connection=connection
    )
    assert backbone.output_shape == (None, 8, 8, 64)
    inputs = keras.Input((32, 32, 3))
    features = backbone(inputs)
    x = keras.layers.Conv2D(5, 1)(features)          # e.g. a dense-prediction head
    x = keras.layers.GlobalAveragePooling2D()(x)
    head = keras.Model(inputs, x)
    head.compile(keras.optimizers.SGD(0.01), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    history = head.fit(images, labels % 5, batch_size=4, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert len(backbone.trainable_weights) > 0
