"""Training-step time and peak memory of recurrent layers, per backend.

Compares, at equal units and batch, for sequence lengths T (pixel-wise
sequential MNIST is T = 784 with one input feature):

- `kr.layers.WCRNN` (fused) and `keras.layers.RNN(kr.layers.WCRNNCell)`,
- `keras.layers.SimpleRNN` and `keras.layers.LSTM`,
- the native references: `torch.nn.RNN` (torch) and a hand-written
  `jax.lax.scan` Elman RNN under `jax.jit` (jax).

Every configuration runs in its own process (so peak memory is its own) with
a Dense(10) softmax head, Adam, sparse categorical cross-entropy, on random
data; the WCRNN layers for each residual of `--residuals` (identity,
diagonal = `Heterogeneous`, rotational at 2*pi/28, dense), and each mode of
`--modes` (`train`: `train_on_batch`; `infer`: `predict_on_batch`).
Reported: median ms per step over at least `--steps` steps
(more, up to 50, until `--min-seconds` of timed steps) after
warm-up, the ratio to keras SimpleRNN of the same backend and length, the
ratio to the fastest keras SimpleRNN of the run, and the growth of peak
resident memory during the steps (MB).

Usage:

    python benchmarks/rnn_speed.py                      # all backends, T = 784 and 100
    python benchmarks/rnn_speed.py --backends torch --lengths 100 --steps 3
    python benchmarks/rnn_speed.py --write              # also update BENCHMARKS.md
    python benchmarks/rnn_speed.py --residuals identity,diagonal,rotational,dense --modes train,infer
"""

import argparse
import json
import os
import resource
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _report  # noqa: E402

LAYERS = ("WCRNN", "RNN(WCRNNCell)", "SimpleRNN", "LSTM", "native")
SKIP = {("torch", "LSTM", 784): "skipped: keras LSTM on torch takes over a minute per step at T = 784"}


def _rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


RESIDUALS = ("identity", "diagonal", "rotational", "dense")


def _residual(name):
    import keras_residual as kr

    return {
        "identity": lambda: kr.residuals.Identity(),
        "diagonal": lambda: kr.residuals.Heterogeneous(radius_range=(0.9, 1.0), seed=0),
        "rotational": lambda: kr.residuals.Rotational(angle=0.2244),
        "dense": lambda: kr.residuals.Dense("orthogonal", scale=0.99, seed=0),
    }[name]()


def _keras_model(layer_name, length, units, residual="rotational"):
    import keras

    import keras_residual as kr

    if layer_name == "WCRNN":
        rnn = kr.layers.WCRNN(units, coupling=0.1, residual=_residual(residual))
    elif layer_name == "RNN(WCRNNCell)":
        rnn = keras.layers.RNN(
            kr.layers.WCRNNCell(units, coupling=0.1, residual=_residual(residual))
        )
    elif layer_name == "SimpleRNN":
        rnn = keras.layers.SimpleRNN(units)
    elif layer_name == "LSTM":
        rnn = keras.layers.LSTM(units)
    else:
        raise ValueError(layer_name)
    model = keras.Sequential([keras.Input((length, 1)), rnn, keras.layers.Dense(10, activation="softmax")])
    model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy")
    return model


def _keras_step(layer_name, length, units, batch, residual="rotational", mode="train"):
    import numpy as np

    model = _keras_model(layer_name, length, units, residual)
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(batch, length, 1)).astype("float32")
    y = rng.integers(0, 10, size=(batch,))
    if mode == "infer":
        return lambda: model.predict_on_batch(x)
    return lambda: model.train_on_batch(x, y)


def _torch_native_step(length, units, batch):
    import torch

    torch.manual_seed(0)
    rnn = torch.nn.RNN(1, units, batch_first=True)
    head = torch.nn.Linear(units, 10)
    params = list(rnn.parameters()) + list(head.parameters())
    optimizer = torch.optim.Adam(params, 1e-3)
    x = torch.rand(batch, length, 1)
    y = torch.randint(0, 10, (batch,))

    def step():
        optimizer.zero_grad()
        _, h = rnn(x)
        loss = torch.nn.functional.cross_entropy(head(h[0]), y)
        loss.backward()
        optimizer.step()
        return float(loss)

    return step


def _jax_native_step(length, units, batch):
    import jax
    import jax.numpy as jnp

    key = jax.random.PRNGKey(0)
    k1, k2, k3 = jax.random.split(key, 3)
    params = {
        "U": jax.random.normal(k1, (1, units)) * 0.5,
        "W": jnp.linalg.qr(jax.random.normal(k2, (units, units)))[0],
        "b": jnp.zeros(units),
        "V": jax.random.normal(k3, (units, 10)) * 0.1,
        "c": jnp.zeros(10),
    }
    x = jax.random.uniform(key, (batch, length, 1))
    y = jax.random.randint(key, (batch,), 0, 10)

    def loss_fn(p, x, y):
        xs = jnp.swapaxes(x @ p["U"] + p["b"], 0, 1)
        h, _ = jax.lax.scan(lambda h, xt: (jnp.tanh(xt + h @ p["W"]), None), jnp.zeros((batch, units)), xs)
        logits = h @ p["V"] + p["c"]
        return -jnp.mean(jax.nn.log_softmax(logits)[jnp.arange(batch), y])

    # Adam, written out, so the comparison does not depend on optax.
    state = {"m": jax.tree.map(jnp.zeros_like, params), "v": jax.tree.map(jnp.zeros_like, params), "t": 0}

    @jax.jit
    def update(p, m, v, t, x, y):
        loss, g = jax.value_and_grad(loss_fn)(p, x, y)
        t = t + 1
        m = jax.tree.map(lambda m, g: 0.9 * m + 0.1 * g, m, g)
        v = jax.tree.map(lambda v, g: 0.999 * v + 0.001 * g * g, v, g)
        p = jax.tree.map(
            lambda p, m, v: p - 1e-3 * (m / (1 - 0.9**t)) / (jnp.sqrt(v / (1 - 0.999**t)) + 1e-7), p, m, v
        )
        return p, m, v, t, loss

    holder = {"p": params, **state}

    def step():
        holder["p"], holder["m"], holder["v"], holder["t"], loss = update(
            holder["p"], holder["m"], holder["v"], holder["t"], x, y
        )
        return float(loss)

    return step


def worker(backend, layer_name, length, units, batch, steps, warmup, min_seconds=0.0,
           residual="rotational", mode="train"):
    if layer_name == "native":
        if backend == "torch":
            step = _torch_native_step(length, units, batch)
        elif backend == "jax":
            step = _jax_native_step(length, units, batch)
        else:
            return None
    else:
        step = _keras_step(layer_name, length, units, batch, residual, mode)
    before = []
    ms = _report.median_ms(step, steps, warmup, after_warmup=lambda: before.append(_rss_mb()),
                           min_seconds=min_seconds)
    return {
        "ms": ms,
        "peak_mb": _rss_mb(),
        "step_mb": max(0.0, _rss_mb() - before[0]),
    }


def run_config(backend, layer_name, length, args, residual="rotational", mode="train"):
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")
    env["PYTHONPATH"] = _report.ROOT + os.pathsep + env.get("PYTHONPATH", "")
    command = [
        sys.executable, os.path.abspath(__file__), "--worker", layer_name,
        "--lengths", str(length), "--units", str(args.units), "--batch", str(args.batch),
        "--steps", str(args.steps), "--warmup", str(args.warmup),
        "--min-seconds", str(args.min_seconds), "--residuals", residual, "--modes", mode,
    ]
    proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=args.timeout)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        return {"error": " / ".join(tail)}
    return json.loads(lines[-1][len("RESULT "):])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default="tensorflow,jax,torch")
    parser.add_argument("--lengths", default="784,100")
    parser.add_argument("--layers", default=",".join(LAYERS))
    parser.add_argument("--units", type=int, default=128)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--min-seconds", type=float, default=3.0,
                        help="time at least this long per configuration (up to 50 steps)")
    parser.add_argument("--residuals", default="rotational",
                        help=f"residuals of the WCRNN layers, out of {', '.join(RESIDUALS)}")
    parser.add_argument("--modes", default="train", help="train, infer or both (train,infer)")
    parser.add_argument("--timeout", type=int, default=900)
    parser.add_argument("--write", action="store_true", help="update the section in BENCHMARKS.md")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    lengths = [int(t) for t in args.lengths.split(",")]

    if args.worker:
        import keras

        result = worker(keras.backend.backend(), args.worker, lengths[0], args.units, args.batch,
                        args.steps, args.warmup, args.min_seconds, args.residuals, args.modes)
        print("RESULT " + json.dumps(result))
        return 0

    backends = args.backends.split(",")
    layer_names = args.layers.split(",")
    residuals = args.residuals.split(",")
    modes = args.modes.split(",")
    # (layer, residual) pairs: one per residual for the WCRNN layers.
    variants = [(name, r) for name in layer_names
                for r in (residuals if name in ("WCRNN", "RNN(WCRNNCell)") else [None])]
    results = {}
    for mode in modes:
        for length in lengths:
            for backend in backends:
                for name, residual in variants:
                    key = (mode, backend, name, residual, length)
                    if (backend, name, length) in SKIP:
                        results[key] = {"skip": SKIP[backend, name, length]}
                    elif name == "native" and (backend == "tensorflow" or mode != "train"):
                        continue
                    else:
                        results[key] = run_config(backend, name, length, args,
                                                  residual or "rotational", mode)
                    print("#", *key, results[key], flush=True)

    rows = []
    for mode in modes:
        for length in lengths:
            simple = {
                b: results[mode, b, "SimpleRNN", None, length]["ms"]
                for b in backends
                if "ms" in results.get((mode, b, "SimpleRNN", None, length), {})
            }
            fastest = min(simple.values()) if simple else None
            for backend in backends:
                for name, residual in variants:
                    r = results.get((mode, backend, name, residual, length))
                    if r is None:
                        continue
                    label = name if name != "native" else (
                        "torch.nn.RNN" if backend == "torch" else "lax.scan Elman (jit)")
                    if residual is not None:
                        label += f" {residual}"
                    if "ms" not in r:
                        rows.append([mode, length, backend, label,
                                     r.get("skip") or "error: " + r["error"], "", "", ""])
                        continue
                    own = f"{r['ms'] / simple[backend]:.2f}" if backend in simple else ""
                    best = f"{r['ms'] / fastest:.2f}" if fastest else ""
                    rows.append([mode, length, backend, label, f"{r['ms']:.1f}", own, best,
                                 f"{r['step_mb']:.0f} / {r['peak_mb']:.0f}"])
    table = _report.markdown_table(
        ["mode", "T", "backend", "layer", "ms/step", "÷ SimpleRNN (same backend)",
         "÷ fastest SimpleRNN", "step / peak RSS MB"],
        rows,
    )
    command = "python benchmarks/rnn_speed.py " + " ".join(sys.argv[1:])
    text = (
        f"### Recurrent layers: step time\n\n"
        f"`{command.strip()}` — units {args.units}, batch {args.batch}, one input feature, "
        f"Dense(10) head, Adam; median of at least {args.steps} steps (up to 50, to fill "
        f"{args.min_seconds:g} s) after {args.warmup} warm-up steps; "
        f"each configuration in its own process.\n\nMachine: {_report.machine()}.\n\n{table}\n"
    )
    print("\n" + text)
    if args.write:
        _report.update_section("rnn_speed", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
