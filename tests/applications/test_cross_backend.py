"""A model of `kr.applications` saved under one backend loads under the others
with identical outputs (a `.keras` file written by tensorflow, read by jax and
torch)."""

import numpy as np

from tests.helpers import assert_backends_agree
from tests.helpers import spans_backends

SNIPPET = """
import keras_residual as kr

def make():
    keras.utils.set_random_seed(0)
    return {
        "pnnh_resnet20": kr.applications.PNNHResNet20(input_shape=(16, 16, 3), classes=5),
        "pnnh_vit_tiny": kr.applications.PNNHViTTiny16(
            input_shape=(16, 16, 3), patch_size=8, classes=5, attention_connection="pnnh"),
    }
"""


@spans_backends
def test_saved_under_tensorflow_loads_under_jax_and_torch():
    images = np.random.default_rng(0).random((2, 16, 16, 3)).astype("float32")
    results = assert_backends_agree(SNIPPET, images, atol=1e-5, transfer="keras_file")
    for outputs in results.values():
        assert outputs["pnnh_resnet20/0"].shape == (2, 5)
        np.testing.assert_allclose(outputs["pnnh_vit_tiny/0"].sum(axis=1), 1.0, atol=1e-5)
