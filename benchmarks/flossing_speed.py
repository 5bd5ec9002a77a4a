"""Cost of gradient flossing: a flossing step against a plain training step.

For one recurrent model (SimpleRNN, LSTM or WCRNN with a Dense head), on the
current Keras backend (or `--backend all`, one process each), times

- a plain training step: `model.train_on_batch` on a (batch, T, 2) batch
  with a mean-squared-error task;
- a flossing step: `train_on_batch` of
  `keras.Model(x, kr.layers.LyapunovExponents(rnn, k)(x))` toward 0 on the
  same batch (what `kr.callbacks.GradientFlossing` runs), with
  `trajectory_gradient` False (the callback's default) and True;

for each k in `--ks` and T in `--lengths`, and prints milliseconds per step
(median of `--steps` after `--warmup`) and the ratio to the plain step of the
same model, batch and T, measured in the same process.

    python benchmarks/flossing_speed.py --backend all
    python benchmarks/flossing_speed.py --models simple_rnn --ks 1,4 --lengths 50
"""

import argparse
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _report  # noqa: E402

BACKENDS = ("tensorflow", "jax", "torch")


def _parse(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default=os.environ.get("KERAS_BACKEND", "tensorflow"),
                        help="a backend, or 'all' (one process each)")
    parser.add_argument("--models", default="simple_rnn,lstm,wcrnn")
    parser.add_argument("--units", type=int, default=32)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--ks", default="1,4,16", help="numbers of exponents flossed")
    parser.add_argument("--lengths", default="50,200", help="sequence lengths T")
    parser.add_argument("--steps", type=int, default=5, help="timed steps per measurement")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps (compilation)")
    return parser.parse_args(argv)


def _layer(name, units):
    import keras

    import keras_residual as kr

    if name == "simple_rnn":
        return "SimpleRNN", keras.layers.SimpleRNN(units)
    if name == "lstm":
        return "LSTM", keras.layers.LSTM(units)
    if name == "wcrnn":
        return "WCRNN", kr.layers.WCRNN(units, coupling=0.5, residual=kr.residuals.Homogeneous(0.9))
    raise SystemExit(f"--models: unknown model {name!r}; allowed: simple_rnn, lstm, wcrnn")


def measure(args):
    import keras
    import numpy as np

    import keras_residual as kr

    backend = keras.backend.backend()
    ks = [int(k) for k in args.ks.split(",")]
    rows = []
    for name in args.models.split(","):
        for steps in [int(t) for t in args.lengths.split(",")]:
            rng = np.random.default_rng(0)
            x = rng.normal(size=(args.batch, steps, 2)).astype("float32")
            y = x[:, 0, :1]
            title, rnn = _layer(name, args.units)
            model = keras.Sequential([keras.Input(x.shape[1:]), rnn, keras.layers.Dense(1)])
            model.compile(keras.optimizers.Adam(1e-3), "mse")
            plain = _report.median_ms(lambda: model.train_on_batch(x, y), args.steps, args.warmup)
            state = 2 * args.units if name == "lstm" else args.units
            for k in [k for k in ks if k <= state]:
                for through in (False, True):
                    inputs = keras.Input(x.shape[1:])
                    exponents = kr.layers.LyapunovExponents(
                        rnn, num_exponents=k, trajectory_gradient=through)
                    floss = keras.Model(inputs, exponents(inputs))
                    floss.compile(keras.optimizers.Adam(1e-3), "mse")
                    target = np.zeros((args.batch, k), "float32")
                    ms = _report.median_ms(lambda: floss.train_on_batch(x, target), args.steps, args.warmup)
                    rows.append((title, steps, k, through, plain, ms))
                    print(f"# {backend} {title} T={steps} k={k} trajectory_gradient={through}: "
                          f"plain {plain:.1f} ms, flossing {ms:.1f} ms", flush=True)
    print(f"\nGradient flossing, backend {backend}: {args.units} units, batch {args.batch}, "
          f"ms per step (median of {args.steps}), CPU")
    print("| model | T | k | trajectory_gradient | plain step ms | flossing step ms | "
          "÷ plain step |")
    print("|---|---|---|---|---|---|---|")
    for title, steps, k, through, plain, ms in rows:
        print(f"| {title} | {steps} | {k} | {through} | {plain:.1f} | {ms:.1f} | "
              f"{ms / plain:.1f}x |")


def main(argv=None):
    args = _parse(argv)
    if args.backend == "all":
        argv = list(sys.argv[1:] if argv is None else argv)
        code = 0
        for backend in BACKENDS:
            rest = [a for i, a in enumerate(argv)
                    if a != "--backend" and (i == 0 or argv[i - 1] != "--backend")
                    and not a.startswith("--backend=")]
            env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")
            proc = subprocess.run([sys.executable, __file__, "--backend", backend, *rest], env=env)
            code = code or proc.returncode
        return code
    if os.environ.get("KERAS_BACKEND") != args.backend:
        env = dict(os.environ, KERAS_BACKEND=args.backend, TF_CPP_MIN_LOG_LEVEL="3")
        argv = list(sys.argv[1:] if argv is None else argv)
        return subprocess.run([sys.executable, __file__, *argv], env=env).returncode
    measure(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
