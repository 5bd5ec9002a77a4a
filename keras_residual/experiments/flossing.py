"""Gradient flossing runs: the delayed-copy task and Engelken's delayed XOR.

Engelken (NeurIPS 2023, arXiv 2312.17306) trains the top Lyapunov exponents
of an RNN toward 0 ("gradient flossing") before and during training, and
reports higher success rates and faster learning on tasks with long time
horizons. Both functions here return one JSON-ready record per run, for
`run_grid`.
"""

import time

import keras
import numpy as np

import keras_residual as kr
from keras_residual import _validation as check
from keras_residual.experiments import models
from keras_residual.experiments import tasks

SETTINGS = ("plain", "before", "during", "before_during")
COPY_MODELS = ("simple_rnn", "lstm", "wcrnn")


def _copy_layer(kind, units, seed):
    base = {"units": units}
    if kind == "wcrnn":  # chaotic at initialisation: lambda_max > 0
        base.update(model="wcrnn", coupling=0.5, residual={"kind": "homogeneous", "radius": 0.9})
    else:
        base["model"] = check.one_of("model", kind, COPY_MODELS)
    return models.make_recurrent(base, seed)


def _lambda_max(rnn, x):
    return tasks.finite_or_none(kr.dynamics.lyapunov_spectrum(rnn, x, num_exponents=1).max)


def _floss_model(rnn, length, k, warmup, learning_rate, trajectory_gradient):
    inputs = keras.Input((length, 1))
    exponents = kr.layers.LyapunovExponents(rnn, num_exponents=k, warmup=warmup,
                                            trajectory_gradient=trajectory_gradient)
    model = keras.Model(inputs, exponents(inputs))
    model.compile(keras.optimizers.Adam(learning_rate), "mse")
    return model


def train_flossing_copy(config, seed):
    """One run of the delayed-copy task (`tasks.delayed_copy`).

    Args:
        config: `model` (`"simple_rnn"`, `"lstm"`, or `"wcrnn"`: homogeneous
            0.9, coupling 0.5, chaotic at initialisation), `setting`
            (`"plain"`, `"before"`: `floss_steps` full-batch flossing steps of
            the top `num_exponents` exponents toward 0 before training;
            `"during"`: `kr.callbacks.GradientFlossing` every `floss_every`
            steps until epoch `floss_epochs`), `delay`, `units`, `samples`,
            `val_samples`, `batch_size`, `epochs`, `learning_rate` (Adam),
            `threshold` (held-out accuracy counted as success),
            `num_exponents`, `probe` (flossing batch), `floss_lr`.
        seed: non-negative integer (weights and data).

    Returns:
        `val_accuracy` per epoch, `success`, `steps_to_threshold` (at epoch
        ends), `lambda_max_init`, `lambda_max_start` (after flossing before
        training) and `lambda_max_final`, `train_seconds`.
    """
    seed = check.integer("seed", seed, minimum=0)
    setting = check.one_of("setting", config["setting"], SETTINGS[:3])
    keras.utils.set_random_seed(seed)
    x, y = tasks.delayed_copy(config["samples"], config["delay"], seed)
    x_val, y_val = tasks.delayed_copy(config["val_samples"], config["delay"], seed + 10_000)
    rnn = _copy_layer(config["model"], config["units"], seed)
    model = keras.Sequential([keras.Input(x.shape[1:]), rnn,
                              keras.layers.Dense(1, activation="sigmoid")])
    model.compile(keras.optimizers.Adam(config["learning_rate"]), "binary_crossentropy",
                  metrics=["accuracy"])
    probe = x_val[: config["probe"]]
    lambda_init = _lambda_max(rnn, probe)
    k = min(config["num_exponents"], config["units"])
    start = time.perf_counter()
    if setting == "before":
        floss = _floss_model(rnn, x.shape[1], k, 0, config["floss_lr"], False)
        floss.fit(x[: config["probe"]], np.zeros((config["probe"], k), "float32"),
                  batch_size=config["probe"], epochs=config["floss_steps"], verbose=0)
    callbacks = []
    if setting == "during":
        callbacks.append(kr.callbacks.GradientFlossing(
            x[: config["probe"]], num_exponents=k, every_n_steps=config["floss_every"],
            until_epoch=config["floss_epochs"],
            weight=config["floss_lr"] / config["learning_rate"]))
    lambda_start = _lambda_max(rnn, probe)
    steps_per_epoch = int(np.ceil(config["samples"] / config["batch_size"]))
    history = model.fit(x, y, batch_size=config["batch_size"], epochs=config["epochs"],
                        verbose=0, validation_data=(x_val, y_val), callbacks=callbacks)
    curve = [tasks.finite_or_none(a) for a in history.history["val_accuracy"]]
    hits = [i for i, a in enumerate(curve) if a is not None and a >= config["threshold"]]
    return {
        "val_accuracy": curve,
        "success": bool(hits),
        "steps_to_threshold": (hits[0] + 1) * steps_per_epoch if hits else None,
        "lambda_max_init": lambda_init,
        "lambda_max_start": lambda_start,
        "lambda_max_final": _lambda_max(rnn, probe),
        "train_seconds": round(time.perf_counter() - start, 2),
    }


def _xor_accuracy(model, x, y, w):
    logits = np.asarray(model.predict(x, batch_size=len(x), verbose=0))[..., 0]
    hits = ((logits > 0) == (y[..., 0] > 0.5)) * w
    return float(hits.sum() / w.sum())


def train_flossing_xor(config, seed):
    """One run of Engelken's delayed-XOR task at the reference code's settings.

    The reference (github.com/RainerEngelken/GradientFlossing, its README's
    command) trains a tanh RNN of 80 units with Gaussian recurrent weights
    (gain 1) on fresh batches of 16 sequences of T = 300 steps, delay 10,
    XOR of the inputs `d` and `2d` steps back, binary cross-entropy at every
    step from `2d` on, Adam 1e-3 with the gradient norm clipped at 0.03, for
    301 steps; flossing (75 exponents toward 0, Adam 1e-3, one fresh
    sequence of 55 steps per flossing step) runs for 50 steps before
    training and, "during", for 50 steps at training steps 10 and 20. Here
    the net is `keras.layers.SimpleRNN` (`h = tanh(W h + U x + b)`, the same
    dynamics as the reference's `x = J tanh(x) + b + U s` up to the change
    of variable `h = tanh(x)`) with a linear read-out.

    Args:
        config: `setting` (`"plain"`, `"before"`, `"before_during"`), `units`,
            `length`, `delay`, `order`, `batch_size`, `steps`, `learning_rate`,
            `clipnorm`, `gain`, `eval_every`, `eval_samples`, `num_exponents`,
            `floss_length`, `floss_warmup`, `floss_steps_before`,
            `floss_steps_during`, `floss_every`, `floss_times`, `floss_lr`,
            `trajectory_gradient`.
        seed: non-negative integer.

    Returns:
        `curve` (per evaluation: `step`, `train_loss`, `accuracy` on fresh
        held-out sequences), `final_accuracy`, `lambda_max_init`,
        `lambda_max_start`, `lambda_max_final`, `flossing_seconds`,
        `train_seconds`.
    """
    seed = check.integer("seed", seed, minimum=0)
    setting = check.one_of("setting", config["setting"], ("plain", "before", "before_during"))
    keras.utils.set_random_seed(seed)
    units, length, delay = config["units"], config["length"], config["delay"]
    rnn = models.make_recurrent({"model": "simple_rnn", "units": units, "return_sequences": True,
                                 "recurrent_init": {"kind": "normal", "gain": config["gain"]}},
                                seed)
    model = keras.Sequential([keras.Input((length, 1)), rnn, keras.layers.Dense(1)])
    model.compile(keras.optimizers.Adam(config["learning_rate"], clipnorm=config["clipnorm"]),
                  keras.losses.BinaryCrossentropy(from_logits=True))
    steps, batch = config["steps"], config["batch_size"]
    x, y, w = tasks.delayed_xor(steps * batch, length, delay, seed, config["order"])
    x_eval, y_eval, w_eval = tasks.delayed_xor(config["eval_samples"], length, delay,
                                               seed + 10_000, config["order"])
    k = min(config["num_exponents"], units)
    fl = config["floss_length"]
    probe = x_eval[:8, :fl]
    lambda_init = _lambda_max(rnn, probe)
    floss = None
    floss_rounds, floss_seconds, rng = 0, 0.0, np.random.default_rng(seed + 20_000)

    def floss_for(n_steps):
        nonlocal floss, floss_seconds
        begin = time.perf_counter()
        if floss is None:
            floss = _floss_model(rnn, fl, k, config["floss_warmup"], config["floss_lr"],
                                 config["trajectory_gradient"])
        bits = rng.integers(0, 2, size=(n_steps, fl, 1)).astype("float32")
        floss.fit(bits, np.zeros((n_steps, k), "float32"), batch_size=1, epochs=1, verbose=0)
        floss_seconds += time.perf_counter() - begin

    if setting in ("before", "before_during"):
        floss_for(config["floss_steps_before"])
    lambda_start = _lambda_max(rnn, probe)
    curve, done, start = [], 0, time.perf_counter()
    while done < steps:
        chunk = min(config["eval_every"], steps - done)
        if setting == "before_during" and floss_rounds < config["floss_times"]:
            # Flossing rounds before training steps floss_every, 2 floss_every, ...
            if done > 0 and done % config["floss_every"] == 0:
                floss_for(config["floss_steps_during"])
                floss_rounds += 1
            chunk = min(chunk, config["floss_every"] - done % config["floss_every"])
        rows = slice(done * batch, (done + chunk) * batch)
        history = model.fit(x[rows], y[rows], sample_weight=w[rows], batch_size=batch,
                            epochs=1, shuffle=False, verbose=0)
        done += chunk
        curve.append({"step": done,
                      "train_loss": tasks.finite_or_none(history.history["loss"][-1]),
                      "accuracy": _xor_accuracy(model, x_eval, y_eval, w_eval)})
        if curve[-1]["train_loss"] is None:
            break
    return {
        "curve": curve,
        "final_accuracy": curve[-1]["accuracy"],
        "lambda_max_init": lambda_init,
        "lambda_max_start": lambda_start,
        "lambda_max_final": _lambda_max(rnn, probe),
        "flossing_rounds_during": floss_rounds,
        "flossing_seconds": round(floss_seconds, 2),
        "train_seconds": round(time.perf_counter() - start, 2),
    }
