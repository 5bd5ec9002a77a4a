"""One run of a plain, residual or PNNH CIFAR ResNet on an image data set.

Measures what the PNNH paper's "dissipating inputs" argument is about: the
survival rate of every ReLU (`kr.dynamics.relu_survival`, inference mode, a
probe batch of test images) at initialisation and after training, the
validation curve, the test accuracy, the parameters and the training
throughput.
"""

import time

import keras
import numpy as np

import keras_residual as kr
from keras_residual import _validation as check
from keras_residual.experiments import models
from keras_residual.experiments import tasks

IMAGE_DATA = ("fashion_mnist", "mnist", "cifar10")
DEFAULTS = {
    "data": "fashion_mnist",
    "source": "auto",
    "train_samples": None,
    "val_samples": 5000,
    "test_samples": None,
    "width": None,
    "coder": "frozen",
    "coder_steps": 200,
    "batch_size": 64,
    "eval_every": 200,
    "probe": 128,
}


def load_images(data, source, train_samples, val_samples, test_samples):
    """`(train, val, test, info)` of an image data set, validation held out."""
    data = check.one_of("data", data, IMAGE_DATA)
    if data == "cifar10":  # one source only: Keras' cache (or its download)
        splits = kr.datasets.cifar10(data_format="channels_last")
    else:
        loader = {"fashion_mnist": kr.datasets.fashion_mnist_images,
                  "mnist": kr.datasets.mnist_images}[data]
        splits = loader(source=source, data_format="channels_last")
    (x, y), (x_test, y_test) = splits
    available = len(x) - val_samples
    train_samples = available if train_samples is None else train_samples
    if not 0 < train_samples <= available:
        raise ValueError(
            f"Argument `train_samples` must be in [1, {available}] for {data} from source "
            f"{splits.source!r} ({val_samples} held out); received train_samples={train_samples}."
        )
    test_samples = len(x_test) if test_samples is None else min(test_samples, len(x_test))
    info = {"data": data, "source": f"{data}:{splits.source}", "standardization": None,
            "n_train": train_samples, "n_val": val_samples, "n_test": test_samples}
    return ((x[:train_samples], y[:train_samples]), (x[len(x) - val_samples:], y[len(y) - val_samples:]),
            (x_test[:test_samples], y_test[:test_samples]), info)


def _survival(model, probe):
    rates = kr.dynamics.relu_survival(model, probe)
    blocks = [float(v) for k, v in rates.items() if k.endswith("output_relu")]
    return {"mean": float(np.mean(list(rates.values()))), "blocks": blocks,
            "last_block": blocks[-1] if blocks else None}


def train_image_classifier(config, seed):
    """Train and measure one CIFAR ResNet (plain / residual / PNNH).

    Args:
        config: `depth`, `connection`, `width` (`None`:
            `kr.applications.ResNet{depth}`; an integer: `models.cifar_resnet`
            of that width), `coder` (PNNH: `"frozen"` coders pre-trained on
            relu(N(0, 1)) and frozen, `"pretrained"` pre-trained and trained
            on, `"random"`), `coder_steps`, `data` (`"fashion_mnist"`, `"mnist"`,
            `"cifar10"`), `source`, `train_samples`,
            `val_samples`, `test_samples`, `optimizer`, `batch_size`, `steps`,
            `eval_every`, `probe`. Missing keys take `DEFAULTS`.
        seed: non-negative integer.

    Returns:
        `survival_init` and `survival_final` (`mean` over all ReLUs, per
        `blocks` output ReLU, `last_block`), `curve` (per evaluation:
        `step`, `train_loss`, `val_accuracy`), `test_accuracy`, `diverged`,
        `parameters`, `pretrained_coders`, `images_per_second` (training,
        median over the evaluation periods after the first, which compiles),
        `data`, `train_seconds`.
    """
    config = {**DEFAULTS, **config}
    seed = check.integer("seed", seed, minimum=0)
    steps = check.positive_int("steps", config.get("steps"))
    (x, y), (x_val, y_val), (x_test, y_test), info = load_images(
        config["data"], config["source"], config["train_samples"], config["val_samples"],
        config["test_samples"])
    keras.utils.set_random_seed(seed)
    if config["width"] is None:
        model = getattr(kr.applications, f"ResNet{config['depth']}")(
            input_shape=x.shape[1:], classes=10, connection=config["connection"],
            classifier_activation=None)
    else:
        model = models.cifar_resnet(config["depth"], config["connection"], config["width"],
                                    x.shape[1:], 10)
    coders = 0
    coder = check.one_of("coder", config["coder"], ("frozen", "pretrained", "random"))
    if config["connection"] == "pnnh" and coder != "random":
        coders = models.pretrain_coders(model, config["coder_steps"], seed, coder == "frozen")
    probe = x_test[: config["probe"]]
    survival_init = _survival(model, probe)
    model.compile(optimizer=models.make_optimizer(config["optimizer"]),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    batch = config["batch_size"]
    rng = np.random.default_rng(seed)
    order = np.empty(0, "int64")
    curve, done, rates, diverged = [], 0, [], False
    start = time.perf_counter()
    while done < steps:
        chunk = min(config["eval_every"], steps - done)
        while len(order) < chunk * batch:
            order = np.concatenate([order, rng.permutation(len(x))])
        index, order = order[: chunk * batch], order[chunk * batch:]
        begin = time.perf_counter()
        history = model.fit(x[index], y[index], batch_size=batch, epochs=1, shuffle=False,
                            verbose=0)
        rates.append(chunk * batch / (time.perf_counter() - begin))
        done += chunk
        loss = tasks.finite_or_none(history.history["loss"][-1])
        val = model.evaluate(x_val, y_val, batch_size=256, verbose=0, return_dict=True)
        curve.append({"step": done, "train_loss": loss,
                      "val_accuracy": tasks.finite_or_none(val["accuracy"])})
        if loss is None:
            diverged = True
            break
    seconds = time.perf_counter() - start
    test = model.evaluate(x_test, y_test, batch_size=256, verbose=0, return_dict=True)
    return {
        "survival_init": survival_init,
        "survival_final": _survival(model, probe),
        "curve": curve,
        "test_accuracy": tasks.finite_or_none(test["accuracy"]),
        "diverged": diverged,
        "parameters": int(model.count_params()),
        "pretrained_coders": coders,
        "images_per_second": float(np.median(rates[1:] if len(rates) > 1 else rates)),
        "data": info,
        "train_seconds": round(seconds, 2),
    }
