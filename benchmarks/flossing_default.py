"""Which `trajectory_gradient` flosses best: the measurement behind the default.

`kr.layers.LyapunovExponents` and `kr.callbacks.GradientFlossing` share one
default for `trajectory_gradient` (whether the gradient of the exponents also
flows through the state trajectory h_t). This script measures both settings
on several nets and seeds, as a user would floss before training:

- nets: a chaotic SimpleRNN (recurrent N(0, (g/sqrt(N))^2), g = 2, lambda_1
  > 0), a stable one (g = 0.5), an LSTM (orthogonal recurrent kernel, gain 2),
  and a WCRNN (rotational residual, coupling 0.5, recurrent gain 2);
- flossing: the top `--k` exponents toward 0 along a (batch, T, 2) Gaussian
  probe, `--steps` full-batch Adam steps at `--lr`, through
  `keras.Model(x, LyapunovExponents(rnn, k, trajectory_gradient=...)(x))`
  with the mean squared error (k times it is the flossing loss);
- figures per run: the flossing loss before and after, and on fresh inputs
  after (the exponents of 4x as many new sequences), and the k-th exponent
  after (how far flossing pushed the tail), each seed from the same
  weights for both settings.

Prints mean +- std over the seeds per net and setting, and with `--write`
puts the table into BENCHMARKS.md.

    KERAS_BACKEND=jax python benchmarks/flossing_default.py --write
    python benchmarks/flossing_default.py --seeds 2 --steps 10      # quick look
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _report  # noqa: E402

NETS = ("chaotic_simple_rnn", "stable_simple_rnn", "lstm", "wcrnn")


def _parse(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nets", default=",".join(NETS))
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--units", type=int, default=32)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps-per-sequence", dest="length", type=int, default=60,
                        help="T, the probe's length")
    parser.add_argument("--k", type=int, default=4, help="exponents flossed")
    parser.add_argument("--steps", type=int, default=60, help="Adam steps")
    parser.add_argument("--lr", type=float, default=1e-2)
    parser.add_argument("--write", action="store_true", help="update BENCHMARKS.md")
    return parser.parse_args(argv)


def _net(name, units, seed):
    import keras
    import numpy as np

    import keras_residual as kr

    if name in ("chaotic_simple_rnn", "stable_simple_rnn"):
        gain = 2.0 if name.startswith("chaotic") else 0.5
        init = keras.initializers.RandomNormal(stddev=gain / np.sqrt(units), seed=seed)
        return keras.layers.SimpleRNN(units, recurrent_initializer=init,
                                      kernel_initializer=keras.initializers.GlorotUniform(seed))
    orthogonal = keras.initializers.Orthogonal(gain=2.0, seed=seed)
    if name == "lstm":
        return keras.layers.LSTM(units, recurrent_initializer=orthogonal,
                                 kernel_initializer=keras.initializers.GlorotUniform(seed))
    if name == "wcrnn":
        return kr.layers.WCRNN(units, coupling=0.5, residual=kr.residuals.Rotational(
            angle_range=(0.1, 1.0), seed=seed), recurrent_initializer=orthogonal,
            kernel_initializer=keras.initializers.GlorotUniform(seed))
    raise SystemExit(f"--nets: unknown net {name!r}; allowed: {', '.join(NETS)}")


def run_one(name, seed, trajectory_gradient, args):
    """(loss before, loss after, fresh-input loss after, k-th exponent after)."""
    import keras
    import numpy as np

    import keras_residual as kr

    rng = np.random.default_rng(seed)
    x = rng.normal(size=(args.batch, args.length, 2)).astype("float32")
    fresh = rng.normal(size=(4 * args.batch, args.length, 2)).astype("float32")
    keras.utils.set_random_seed(seed)
    rnn = _net(name, args.units, seed)
    rnn(x)
    inputs = keras.Input(x.shape[1:])
    exponents = kr.layers.LyapunovExponents(rnn, num_exponents=args.k,
                                            trajectory_gradient=trajectory_gradient)
    model = keras.Model(inputs, exponents(inputs))
    k = args.k
    model.compile(keras.optimizers.Adam(args.lr),
                  lambda t, v: k * keras.ops.mean(keras.ops.square(v - t), axis=-1))
    zeros = np.zeros((args.batch, k), "float32")

    def loss_on(data):
        values = np.asarray(keras.ops.convert_to_numpy(exponents(data)), "float64")
        return float(np.mean(np.sum(values**2, axis=-1))), values

    before, _ = loss_on(x)
    for _ in range(args.steps):
        model.train_on_batch(x, zeros)
    after, _ = loss_on(x)
    fresh_after, values = loss_on(fresh)
    return before, after, fresh_after, float(np.mean(values[:, -1]))


def main(argv=None):
    args = _parse(argv)
    import keras
    import numpy as np

    rows, summary = [], {}
    nets = [n for n in args.nets.split(",") if n]
    for name in nets:
        for setting in (False, True):
            runs = np.array([run_one(name, seed, setting, args) for seed in range(args.seeds)])
            summary[(name, setting)] = runs
            mean, std = np.nanmean(runs, axis=0), np.nanstd(runs, axis=0, ddof=1)
            finite = int(np.sum(np.all(np.isfinite(runs[:, :4]), axis=1)))
            cells = [f"{m:.4f} ± {s:.4f}" for m, s in zip(mean[:4], std[:4])]
            rows.append([name, str(setting), *cells, f"{finite}/{args.seeds}"])
            print(" | ".join(rows[-1]), flush=True)
    wins = []
    for name in nets:
        off, on = summary[(name, False)][:, 2], summary[(name, True)][:, 2]
        wins.append(f"{name}: fresh-input loss after, False < True in "
                    f"{int(np.sum(off < on))}/{args.seeds} seeds")
    table = _report.markdown_table(
        ["net", "trajectory_gradient", "loss before", "loss after", "loss after, fresh inputs",
         f"λ_{args.k} after", "finite runs"], rows)
    text = (
        "## Gradient flossing: which `trajectory_gradient` flosses best\n\n"
        f"`KERAS_BACKEND={keras.backend.backend()} python benchmarks/flossing_default.py"
        f"{' --write' if args.write else ''}` ({args.units} units, probe of {args.batch} "
        f"Gaussian sequences of T = {args.length}, top {args.k} exponents toward 0, "
        f"{args.steps} full-batch Adam {args.lr:g} steps, {args.seeds} seeds, the same "
        "weights for both settings; loss = mean over sequences of the sum of the squared "
        "exponents, mean ± std over seeds). Machine: " + _report.machine() + ".\n\n"
        + table + "\n\n" + "; ".join(wins) + ".\n"
    )
    print(text)
    if args.write:
        _report.update_section("flossing_default", text)
    return summary


if __name__ == "__main__":
    main()
