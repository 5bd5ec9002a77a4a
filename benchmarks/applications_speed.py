"""Training throughput and parameters of `kr.applications` in each connection.

For each model (CIFAR ResNet20/56/110, ImageNet ResNet18/50 at a small
input, ViT-Tiny) and each connection (residual, pnnh, plain), builds the
model with `weights=None`, trains it on random images of the model's input
shape (speed only: the data's content does not matter here) and reports
parameters and training images/s, with ratios against the residual model
of the same family measured in the same run. Steps are timed one by one
with `train_on_batch`, interleaved round-robin between the three
connections of a family, so that load from other processes hits them alike;
the median is reported. One process per backend.

The papers' reference (PNNH): on-par accuracy, up to 2x fewer parameters and
up to 0.3x higher throughput than ResNets. Those are for the paper's own
PNNH architectures; here the three connections share the same learner, so
the comparison isolates the connection.

Usage:

    python benchmarks/applications_speed.py                       # all backends
    python benchmarks/applications_speed.py --backends jax --models ResNet20,ViTTiny16
    python benchmarks/applications_speed.py --quick               # smaller, for a smoke run
"""

import argparse
import json
import os
import subprocess
import sys
import time

BACKENDS = ("tensorflow", "jax", "torch")
CONNECTIONS = ("residual", "pnnh", "plain")
# name -> (constructor keyword arguments, input shape, classes)
MODELS = {
    "ResNet20": ({}, (32, 32, 3), 10),
    "ResNet56": ({}, (32, 32, 3), 10),
    "ResNet110": ({}, (32, 32, 3), 10),
    "ResNet18": ({}, (32, 32, 3), 100),
    "ResNet50": ({}, (32, 32, 3), 100),
    "ViTTiny16": ({"patch_size": 4, "pooling": "token"}, (32, 32, 3), 10),
}


def _parse(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default="tensorflow,jax,torch")
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=3, help="timed steps per round")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved rounds")
    parser.add_argument("--quick", action="store_true",
                        help="ResNet20 and ViT-Tiny only, 1 round of 2 steps")
    parser.add_argument("--timeout", type=int, default=1800, help="seconds per backend")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def _worker(args):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras
    import numpy as np

    import keras_residual as kr

    results = []
    for name in args.models.split(","):
        kwargs, shape, classes = MODELS[name]
        rng = np.random.default_rng(0)
        n = args.batch * args.steps
        x = rng.random((n,) + shape).astype("float32")
        y = rng.integers(0, classes, n)
        models = {}
        for connection in CONNECTIONS:
            keras.utils.set_random_seed(0)
            model = getattr(kr.applications, name)(
                input_shape=shape, classes=classes, connection=connection,
                classifier_activation=None, **kwargs,
            )
            model.compile(
                optimizer=keras.optimizers.SGD(0.01, momentum=0.9),
                loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            )
            start = time.perf_counter()
            for i in range(2):  # warm-up: traces / compiles the train step
                model.train_on_batch(x[: args.batch], y[: args.batch])
            models[connection] = (model, time.perf_counter() - start)
        times = {c: [] for c in models}
        for _ in range(args.repeats):
            for connection, (model, _) in models.items():
                for i in range(args.steps):
                    batch = slice(i * args.batch, (i + 1) * args.batch)
                    start = time.perf_counter()
                    model.train_on_batch(x[batch], y[batch])
                    times[connection].append(time.perf_counter() - start)
        for connection, (model, warm) in models.items():
            step = float(np.median(times[connection]))
            results.append({
                "model": name, "connection": connection, "params": model.count_params(),
                "images_per_s": args.batch / step, "warmup_s": warm, "input": shape,
            })
            print(f"# {name} {connection}: {model.count_params():,} params, "
                  f"{args.batch / step:.1f} images/s", flush=True)
    with open(args.worker, "w") as f:
        json.dump(results, f)


def main(argv=None):
    args = _parse(argv)
    if args.worker:
        _worker(args)
        return 0
    if args.quick:
        args.models, args.steps, args.repeats = "ResNet20,ViTTiny16", 2, 1
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import tempfile

    import _report

    unknown = [m for m in args.models.split(",") if m not in MODELS]
    if unknown:
        raise SystemExit(f"--models: unknown {unknown}; allowed: {list(MODELS)}")
    rows, code = [], 0
    for backend in args.backends.split(","):
        if backend not in BACKENDS:
            raise SystemExit(f"--backends: unknown backend {backend!r}; allowed: {BACKENDS}")
        with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
            out = f.name
        env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")
        command = [sys.executable, __file__, "--worker", out, "--models", args.models,
                   "--batch", str(args.batch), "--steps", str(args.steps),
                   "--repeats", str(args.repeats)]
        try:
            proc = subprocess.run(command, env=env, timeout=args.timeout)
            failed = proc.returncode != 0
        except subprocess.TimeoutExpired:
            failed = True
        if failed:
            print(f"# {backend}: failed", flush=True)
            code = 1
            continue
        with open(out) as f:
            results = json.load(f)
        os.unlink(out)
        reference = {r["model"]: r for r in results if r["connection"] == "residual"}
        for r in results:
            ref = reference[r["model"]]
            h, w, _ = r["input"]
            rows.append([
                backend, f"{r['model']} ({h}x{w})", r["connection"], f"{r['params']:,}",
                f"{r['params'] / ref['params']:.3f}", f"{r['images_per_s']:.1f}",
                f"{r['images_per_s'] / ref['images_per_s']:.2f}",
            ])
    print(f"\nTraining throughput, batch {args.batch}, median of {args.steps * args.repeats} "
          f"steps after 2 warm-up steps, SGD with momentum, random images.\n")
    print(_report.markdown_table(
        ["backend", "model (input)", "connection", "parameters", "÷ residual params",
         "images/s", "÷ residual images/s"], rows))
    return code


if __name__ == "__main__":
    sys.exit(main())
