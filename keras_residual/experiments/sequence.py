"""One run of a recurrent network on a sequence task, measured as the papers do.

`train_sequence_model(config, seed)` builds the model of `config`, measures
its largest Lyapunov exponent on a probe batch, trains it for a budget of
optimiser steps, evaluating on the validation set every `eval_every` steps
(the convergence curve), stops early at the target if asked, and measures
the test score and the exponent again. It returns a JSON-ready dict, what
`run_grid` stores as one results line.
"""

import time

import keras
import numpy as np

import keras_residual as kr
from keras_residual import _validation as check
from keras_residual.experiments import models
from keras_residual.experiments import tasks

DEFAULTS = {
    "source": "auto",
    "standardize": False,
    "train_samples": None,
    "val_samples": 500,
    "test_samples": None,
    "length": 100,
    "units": 64,
    "batch_size": 64,
    "eval_every": 100,
    "target": None,
    "stop_at_target": False,
    "lyapunov": {"probe": 8, "num_exponents": 8, "warmup": 100},
}


def _lambda_max(layer, probe, settings):
    warmup = min(settings["warmup"], probe.shape[1] // 2)
    k = min(settings["num_exponents"], layer.units)
    spectrum = kr.dynamics.lyapunov_spectrum(
        layer, probe, num_exponents=k, warmup=warmup, qr_interval="auto"
    )
    return tasks.finite_or_none(spectrum.max)


class _Batches:
    """Indices of successive shuffled epochs, cut into chunks of whole batches."""

    def __init__(self, n, seed):
        self.n, self.rng, self.order = n, np.random.default_rng(seed), np.empty(0, "int64")

    def take(self, count):
        while len(self.order) < count:
            self.order = np.concatenate([self.order, self.rng.permutation(self.n)])
        chunk, self.order = self.order[:count], self.order[count:]
        return chunk


def train_sequence_model(config, seed, verbose=0):
    """Train and measure one recurrent network on one sequence task.

    Args:
        config: a dict. Task: `task` (see `tasks.SEQUENCE_TASKS`),
            `train_samples`, `val_samples`, `test_samples`, `length` (adding
            problem), `standardize`, `source`. Model: `model`, `units`,
            `residual`, `coupling`, `recurrent_init` (see
            `models.make_recurrent`). Training: `optimizer` (see
            `models.make_optimizer`), `batch_size`, `steps` (the budget of
            optimiser steps), `eval_every` (steps between validation
            evaluations), `target` (a validation accuracy to reach, or an MSE
            to get below for the adding problem), `stop_at_target`.
            Measurement: `lyapunov` (`probe` sequences, `num_exponents`,
            `warmup`). Missing keys take `DEFAULTS`.
        seed: non-negative integer: weights, batch order, heterogeneous radii.
        verbose: 1 prints one line per evaluation.

    Returns:
        A dict: `curve` (per evaluation: `step`, `train_loss`, `val_loss`,
        `val_metric`, `val_score`), `metric` (`"accuracy"` or `"mse"`),
        `test_metric`, `test_score` (normalised: 0 at chance, 1 perfect),
        `best_val_metric`, `auc` (mean normalised validation score over the
        evaluations; a diverged evaluation counts 0), `steps_done`,
        `steps_to_target` (`None` if never), `diverged`,
        `lyapunov_max_init` / `_final` / `_analytic` (max log|eig R| of a
        WCRNN's residual), `angle0`, `data` (source, standardisation,
        sizes), `parameters`, `train_seconds`.
    """
    config = {**DEFAULTS, **config}
    seed = check.integer("seed", seed, minimum=0)
    steps = check.positive_int("steps", config.get("steps"))
    eval_every = check.positive_int("eval_every", config["eval_every"])
    batch_size = check.positive_int("batch_size", config["batch_size"])
    task = config["task"]
    (x, y), (x_val, y_val), (x_test, y_test), info = tasks.load_sequence_task(
        task, config["train_samples"], config["val_samples"], config["test_samples"],
        config["length"], config["standardize"], config["source"],
    )
    classification = tasks.is_classification(task)
    angle0 = None
    if task != "adding":
        angle0 = float(kr.dynamics.characteristic_frequency(x[:512]))

    keras.utils.set_random_seed(seed)
    layer = models.make_recurrent(config, seed, angle0)
    model = keras.Sequential([keras.Input(x.shape[1:]), layer,
                              keras.layers.Dense(10 if classification else 1)])
    model.compile(
        optimizer=models.make_optimizer(config["optimizer"]),
        # Logits: with a softmax layer TensorFlow's cross-entropy reads the logits behind
        # it while jax/torch clip probabilities at 1e-7, so the backends would differ.
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        if classification else "mse",
        metrics=["accuracy"] if classification else [],
    )
    probe = x_test[: config["lyapunov"]["probe"]]
    lyapunov_init = _lambda_max(layer, probe, config["lyapunov"])

    batches = _Batches(len(x), seed)
    curve, steps_done, steps_to_target, diverged = [], 0, None, False
    start = time.perf_counter()
    while steps_done < steps:
        chunk = min(eval_every, steps - steps_done)
        index = batches.take(chunk * batch_size)
        history = model.fit(x[index], y[index], batch_size=batch_size, epochs=1,
                            shuffle=False, verbose=0)
        steps_done += chunk
        train_loss = tasks.finite_or_none(history.history["loss"][-1])
        val = model.evaluate(x_val, y_val, batch_size=256, verbose=0, return_dict=True)
        value = tasks.finite_or_none(val["accuracy"] if classification else val["loss"])
        curve.append({
            "step": steps_done, "train_loss": train_loss,
            "val_loss": tasks.finite_or_none(val["loss"]), "val_metric": value,
            "val_score": tasks.normalized_score(task, value),
        })
        if verbose:
            print(f"    step {steps_done}: train loss {train_loss}, val "
                  f"{'accuracy' if classification else 'mse'} {value}", flush=True)
        if train_loss is None or value is None:
            diverged = True
            break
        if steps_to_target is None and tasks.reached(task, value, config["target"]):
            steps_to_target = steps_done
            if config["stop_at_target"]:
                break
    seconds = time.perf_counter() - start

    test = model.evaluate(x_test, y_test, batch_size=256, verbose=0, return_dict=True)
    test_value = tasks.finite_or_none(test["accuracy"] if classification else test["loss"])
    values = [c["val_metric"] for c in curve if c["val_metric"] is not None]
    best = (max if classification else min)(values) if values else None
    scores = [c["val_score"] if c["val_score"] is not None else 0.0 for c in curve]
    analytic = None
    if config["model"] == "wcrnn":
        analytic = models.analytic_lambda_max(config["residual"], layer.units, seed, angle0)
    return {
        "metric": "accuracy" if classification else "mse",
        "curve": curve,
        "test_metric": test_value,
        "test_score": tasks.normalized_score(task, test_value),
        "best_val_metric": best,
        "auc": sum(scores) / len(scores) if scores else None,
        "steps_done": steps_done,
        "steps_to_target": steps_to_target,
        "diverged": diverged,
        "lyapunov_max_init": lyapunov_init,
        "lyapunov_max_final": _lambda_max(layer, probe, config["lyapunov"]),
        "lyapunov_max_analytic": analytic,
        "angle0": angle0,
        "data": info,
        "parameters": int(model.count_params()),
        "train_seconds": round(seconds, 2),
    }
