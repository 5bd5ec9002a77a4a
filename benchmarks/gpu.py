"""One command that times keras-residual on a CUDA machine (jax or torch), and on the CPU.

Measures, under the current `KERAS_BACKEND` (jax or torch; jax when it is
unset), in one process,
with every ratio against a baseline measured in the same run:

1. `rnn`: the training step (ms, median of 10 steps after 3) of the fused
   `kr.layers.WCRNN` against `keras.layers.SimpleRNN` (and, on torch,
   `keras.layers.LSTM` and the native `torch.nn.RNN`, both cuDNN on a GPU),
   T = 784 and 100, 128 units, batch 64, one input feature, Dense(10) head,
   Adam; ratio to SimpleRNN.
2. `lyapunov`: `kr.dynamics.lyapunov_spectrum` with `qr_method="householder"`
   and `"cholesky"` (CholeskyQR2), QR every step, for a WCRNN and a Keras
   SimpleRNN (N = 128, full spectrum) and LSTM (64 units, 64 of its 128
   exponents), T = 784, batch 8: seconds of a warm call (the first call,
   with tracing and compilation, in the notes); ratio cholesky / householder.
3. `callbacks`: what `kr.callbacks.LyapunovCallback` (WCRNN, T = 784) and
   `kr.callbacks.ReLUSurvivalCallback` (PNNH ResNet20) add to an epoch of
   `model.fit`: the median epoch with the callback minus the median epoch
   without it, same model, same run (first epoch of each fit left out).
4. `applications`: training throughput (images/s) of `kr.applications`
   ResNet20 (32x32, batch 128) and ResNet50 (224x224, batch 64) with
   `connection="pnnh"` and `"residual"`, SGD with momentum; ratio to residual.

Training steps are written with Keras' public stateless API (`jax.jit` of
`model.stateless_call` + `optimizer.stateless_apply` on jax; forward,
`backward` and `optimizer.apply` on torch), as Keras' own train step does,
with the data already on the device: nothing is copied to the host inside a
timed step. Each timed step ends with a device synchronisation
(`jax.block_until_ready` of the loss and the new state; `torch.cuda.synchronize`).

Nothing here needs TensorFlow (the GPU machine has none), and `import
keras_residual` does not import it under jax or torch. Where TensorFlow is
installed, Keras still imports it on the way (`serialize_keras_object` asks
`tf.available`, e.g. from `keras.activations.serialize`), which is harmless;
the script says at the end whether it was imported. Every case runs in its
own try/except: a failure is recorded in the table (and the JSON) as an
error, and the rest still runs. With `--json PATH` the results are written
after every section, so a run killed half-way keeps what it measured.

On a machine without a GPU, or with `--small`, tiny sizes are used (the
whole run takes under a minute on 2 CPU cores): a smoke run of every code
path, not a measurement. It leaves ResNet50 out (its XLA compilation alone
takes about 20 s per connection on 2 CPU cores) and, on jax, sets
`jax_disable_most_optimizations` (compile time is most of such a run).
`--full` forces the full sizes on the CPU. `--max-seconds S` skips the cases
that would start after S seconds, so that a run on a rented machine ends in
time with its table (sections run in the order above, cheapest first).

Usage:

    KERAS_BACKEND=jax python3 benchmarks/gpu.py
    KERAS_BACKEND=torch python3 benchmarks/gpu.py --json gpu_torch.json
    KERAS_BACKEND=jax python3 benchmarks/gpu.py --small --only rnn,lyapunov
    KERAS_BACKEND=jax python3 benchmarks/gpu.py --max-seconds 240 --json $OUT/gpu_jax.json
"""

import argparse
import json
import math
import os
import platform
import statistics
import sys
import time
import traceback

SECTIONS = ("rnn", "lyapunov", "callbacks", "applications")
BACKENDS = ("jax", "torch")

# Sizes of the GPU run (full) and of the smoke run (small).
FULL = {
    "rnn": dict(lengths=(784, 100), units=128, batch=64, warmup=3, steps=10),
    "lyapunov": dict(units=128, lstm_units=64, lstm_exponents=64, steps=784, batch=8),
    "callbacks": dict(units=128, length=784, samples=2048, batch=64, epochs=3,
                      probe=8, exponents=16, lyapunov_warmup=100,
                      relu_model="ResNet20", image=32, images=4096, image_batch=128,
                      relu_probe=256),
    "applications": dict(models=(("ResNet20", 32, 128, 10), ("ResNet50", 224, 64, 1000)),
                         warmup=3, steps=10),
}
SMALL = {
    "rnn": dict(lengths=(16,), units=8, batch=4, warmup=1, steps=3),
    "lyapunov": dict(units=8, lstm_units=4, lstm_exponents=4, steps=24, batch=2),
    "callbacks": dict(units=8, length=16, samples=64, batch=32, epochs=3,
                      probe=2, exponents=4, lyapunov_warmup=4,
                      relu_model="blocks", image=8, images=32, image_batch=16, relu_probe=8),
    # ResNet50 is left out: its XLA compilation alone (the weights' initializers, then the
    # train step) takes about 20 s per connection on 2 CPU cores; the code path is ResNet20's.
    "applications": dict(models=(("ResNet20", 8, 4, 10),), warmup=1, steps=2),
}


def _parse(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--small", action="store_true",
                      help="tiny sizes (a smoke run); the default on a machine without a GPU")
    size.add_argument("--full", action="store_true",
                      help="full sizes even without a GPU (slow on a CPU)")
    parser.add_argument("--only", default=",".join(SECTIONS),
                        help=f"comma-separated subset of {','.join(SECTIONS)}")
    parser.add_argument("--json", metavar="PATH", help="write the results here (JSON)")
    parser.add_argument("--max-seconds", type=float, default=None,
                        help="skip the cases that would start after this many seconds (the "
                             "table and the JSON still come out; skips are not errors)")
    args = parser.parse_args(argv)
    args.sections = [s for s in args.only.split(",") if s]
    unknown = [s for s in args.sections if s not in SECTIONS]
    if unknown:
        parser.error(f"--only: unknown section(s) {unknown}; allowed: {list(SECTIONS)}")
    return args


# --------------------------------------------------------------------- backend and device
class Backend:
    """The current backend's device, synchronisation and training step."""

    def __init__(self, name):
        self.name = name
        if name == "jax":
            import jax

            self.jax = jax
            self.gpu = jax.default_backend() == "gpu"
        else:
            import torch

            self.torch = torch
            self.gpu = torch.cuda.is_available()
            self.device = "cuda" if self.gpu else "cpu"

    def sync(self, tree=None):
        """Wait until the device has finished the work that produced `tree`."""
        if self.name == "jax":
            if tree is not None:
                self.jax.block_until_ready(tree)
        elif self.gpu:
            self.torch.cuda.synchronize()

    def describe(self):
        if self.name == "jax":
            devices = self.jax.devices()
            kinds = sorted({getattr(d, "device_kind", d.platform) for d in devices})
            return f"{len(devices)} x {', '.join(kinds)} ({self.jax.default_backend()})"
        if self.gpu:
            count = self.torch.cuda.device_count()
            return f"{count} x {self.torch.cuda.get_device_name(0)} (cuda)"
        return f"CPU: {_cpu_name()}, {os.cpu_count()} cores"

    def versions(self):
        import keras
        import numpy

        import keras_residual

        out = {"python": platform.python_version(), "keras": keras.__version__,
               "numpy": numpy.__version__, "keras_residual": keras_residual.__version__}
        if self.name == "jax":
            out["jax"] = self.jax.__version__
            try:
                import jaxlib

                out["jaxlib"] = jaxlib.__version__
                out["platform"] = self.jax.devices()[0].client.platform_version
            except Exception:  # noqa: BLE001 - informative only
                pass
        else:
            out["torch"] = self.torch.__version__
            if self.torch.version.cuda:
                out["cuda"] = self.torch.version.cuda
            if self.gpu and self.torch.backends.cudnn.is_available():
                out["cudnn"] = str(self.torch.backends.cudnn.version())
        return out

    def tensor(self, array):
        """`array` on the device (the Keras backend's default device)."""
        import keras

        return keras.ops.convert_to_tensor(array)

    def train_step(self, model, optimizer, loss_fn, x, y):
        """A function running one training step of `model` on (x, y) (device
        tensors); it returns what to synchronise on."""
        if self.name == "jax":
            return self._jax_train_step(model, optimizer, loss_fn, x, y)
        return self._torch_train_step(model, optimizer, loss_fn, x, y)

    def _jax_train_step(self, model, optimizer, loss_fn, x, y):
        jax = self.jax
        optimizer.build(model.trainable_variables)

        def compute_loss(trainable, non_trainable, x, y):
            y_pred, non_trainable = model.stateless_call(trainable, non_trainable, x, training=True)
            return loss_fn(y, y_pred), non_trainable

        grad_fn = jax.value_and_grad(compute_loss, has_aux=True)

        @jax.jit
        def update(state, x, y):
            trainable, non_trainable, opt = state
            (loss, non_trainable), grads = grad_fn(trainable, non_trainable, x, y)
            trainable, opt = optimizer.stateless_apply(opt, grads, trainable)
            return loss, (trainable, non_trainable, opt)

        holder = [(
            [v.value for v in model.trainable_variables],
            [v.value for v in model.non_trainable_variables],
            [v.value for v in optimizer.variables],
        )]

        def step():
            loss, holder[0] = update(holder[0], x, y)
            return loss, holder[0]

        return step

    def _torch_train_step(self, model, optimizer, loss_fn, x, y):
        torch = self.torch
        trainable = list(model.trainable_variables)
        optimizer.build(trainable)

        def step():
            y_pred = model(x, training=True)
            loss = loss_fn(y, y_pred)
            for v in trainable:
                v.value.grad = None
            loss.backward()
            grads = [v.value.grad for v in trainable]
            with torch.no_grad():
                optimizer.apply(grads, trainable)
            return loss

        return step


def _cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def time_steps(backend, step, warmup, steps):
    """Median seconds of `step()` over `steps` calls after `warmup` calls, each
    call followed by a device synchronisation."""
    for _ in range(warmup):
        backend.sync(step())
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        out = step()
        backend.sync(out)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


# ------------------------------------------------------------------------------ results
class Results:
    """Rows of the table; each is a number or an error."""

    def __init__(self, deadline=None):
        self.rows = []
        self.deadline = deadline  # time.perf_counter() after which cases are skipped

    def add(self, section, case, value=None, unit="", note="", error=None, key=None,
            skipped=None):
        row = {"section": section, "case": case, "key": key or case, "value": value,
               "unit": unit, "ratio": None, "ratio_to": "", "note": note}
        if error is not None:
            row["error"] = error
            row["value"] = None
        if skipped is not None:
            row["skipped"] = skipped
            row["value"] = None
        self.rows.append(row)
        if error is not None:
            shown = f"error: {error}"
        elif skipped is not None:
            shown = f"skipped: {skipped}"
        else:
            shown = f"{_fmt(value)} {unit}"
        print(f"# {section} | {case} | {shown} | {note}", flush=True)
        return row

    def guard(self, section, case, unit, function, key=None):
        """Runs `function()` -> (value, note) or (value, note, ratio, ratio_to);
        records its value or its error."""
        start = time.perf_counter()
        if self.deadline is not None and start > self.deadline:
            return self.add(section, case, unit=unit, key=key,
                            skipped="--max-seconds reached before this case")
        try:
            out = function()
            value, note = out[:2]
            if value is None or not math.isfinite(value):
                row = self.add(section, case, unit=unit, note=note, key=key,
                               error=f"not a finite number: {value!r}")
            else:
                row = self.add(section, case, value, unit, note, key=key)
                if len(out) > 2:
                    row["ratio"], row["ratio_to"] = out[2], out[3]
        except Exception as error:  # noqa: BLE001 - one failure must not lose the rest
            traceback.print_exc()
            row = self.add(section, case, unit=unit, key=key,
                           error=f"{type(error).__name__}: {_one_line(error)}")
        row["seconds"] = time.perf_counter() - start  # the whole case: build, compile, runs
        return row

    def ratios(self, section, baseline_of, label):
        """Sets each row's ratio to the value of the row `baseline_of(row)` (a key)."""
        values = {r["key"]: r["value"] for r in self.rows
                  if r["section"] == section and r["value"] is not None}
        for r in self.rows:
            if r["section"] != section or r["value"] is None:
                continue
            base_key = baseline_of(r)
            base = values.get(base_key)
            if base_key is not None and base:
                r["ratio"] = r["value"] / base
                r["ratio_to"] = label(base_key)

    def table(self):
        lines = ["| section | case | value | unit | ratio | ratio to | notes |",
                 "|---|---|---:|---|---:|---|---|"]
        for r in self.rows:
            if "error" in r:
                value = f"error: {r['error']}"
            elif "skipped" in r:
                value = f"skipped: {r['skipped']}"
            else:
                value = _fmt(r["value"])
            ratio = "" if r["ratio"] is None else f"{r['ratio']:.2f}"
            cells = [r["section"], r["case"], value, r["unit"], ratio, r["ratio_to"], r["note"]]
            lines.append("| " + " | ".join(str(c).replace("|", "/") for c in cells) + " |")
        return "\n".join(lines)


def _fmt(value):
    if value is None:
        return ""
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 1:
        return f"{value:.2f}"
    return f"{value:.3g}"


def _one_line(error, limit=300):
    text = " ".join(str(error).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _seed(backend, seed=0):
    """Seeds Python, NumPy and torch (Keras draws unseeded initializers' seeds from
    Python's `random`). Not `keras.utils.set_random_seed`: that imports TensorFlow
    wherever it is installed, to seed it too."""
    import random

    import numpy as np

    random.seed(seed)
    np.random.seed(seed)
    if backend.name == "torch":
        backend.torch.manual_seed(seed)


def _release(backend):
    """Frees the models of a section (`clear_session` collects garbage too)."""
    import keras

    keras.backend.clear_session()
    if backend.name == "torch" and backend.gpu:
        backend.torch.cuda.empty_cache()


# ------------------------------------------------------------------------------ sections
def _rnn_layer(name, units):
    import keras

    import keras_residual as kr

    if name == "WCRNN":
        return kr.layers.WCRNN(units, coupling=0.1,
                               residual=kr.residuals.Rotational(angle=2 * math.pi / 28))
    if name == "SimpleRNN":
        return keras.layers.SimpleRNN(units)
    if name == "LSTM":
        return keras.layers.LSTM(units)
    raise ValueError(name)


def section_rnn(backend, sizes, results):
    import keras
    import numpy as np

    units, batch = sizes["units"], sizes["batch"]
    # On torch also Keras' LSTM (cuDNN on a GPU) and the native torch.nn.RNN, as references.
    names = ["WCRNN", "SimpleRNN"] + (["LSTM", "torch.nn.RNN"] if backend.name == "torch" else [])
    for length in sizes["lengths"]:
        rng = np.random.default_rng(0)
        x_np = rng.uniform(size=(batch, length, 1)).astype("float32")
        y_np = rng.integers(0, 10, size=(batch,)).astype("int32")
        for name in names:
            def run(name=name):
                if name == "torch.nn.RNN":
                    seconds = _torch_native_rnn(backend, x_np, y_np, units, sizes)
                    return 1000 * seconds, "cuDNN" if backend.gpu else "native"
                _seed(backend)
                layer = _rnn_layer(name, units)
                model = keras.Sequential([keras.Input((length, 1)), layer, keras.layers.Dense(10)])
                loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
                step = backend.train_step(model, keras.optimizers.Adam(1e-3), loss,
                                          backend.tensor(x_np), backend.tensor(y_np))
                seconds = time_steps(backend, step, sizes["warmup"], sizes["steps"])
                note = ""
                if name == "WCRNN":
                    note = "fused kernel" if layer.uses_fused_kernel(training=True) else \
                        "generic RNN path (not fused)"
                return 1000 * seconds, note

            results.guard("rnn train step", f"T={length} {name}", "ms/step", run,
                          key=(length, name))
    results.ratios("rnn train step", lambda r: (r["key"][0], "SimpleRNN"),
                   lambda k: "SimpleRNN")


def _torch_native_rnn(backend, x_np, y_np, units, sizes):
    torch = backend.torch
    torch.manual_seed(0)
    device = backend.device
    rnn = torch.nn.RNN(1, units, batch_first=True).to(device)
    head = torch.nn.Linear(units, 10).to(device)
    optimizer = torch.optim.Adam(list(rnn.parameters()) + list(head.parameters()), 1e-3)
    x = torch.as_tensor(x_np, device=device)
    y = torch.as_tensor(y_np, device=device).long()

    def step():
        optimizer.zero_grad()
        _, h = rnn(x)
        loss = torch.nn.functional.cross_entropy(head(h[0]), y)
        loss.backward()
        optimizer.step()
        return loss

    return time_steps(backend, step, sizes["warmup"], sizes["steps"])


def section_lyapunov(backend, sizes, results):
    import keras
    import numpy as np

    import keras_residual as kr

    rng = np.random.default_rng(0)
    x = rng.normal(size=(sizes["batch"], sizes["steps"], 1)).astype("float32")
    glorot = keras.initializers.GlorotUniform(seed=1)
    orthogonal = keras.initializers.Orthogonal(seed=2)
    units, lstm_units = sizes["units"], sizes["lstm_units"]
    models = {
        "WCRNN": (lambda: kr.layers.WCRNN(
            units, coupling=0.1, residual=kr.residuals.Rotational(angle=2 * math.pi / 28),
            kernel_initializer=glorot, recurrent_initializer=orthogonal), units, None),
        "SimpleRNN": (lambda: keras.layers.SimpleRNN(
            units, kernel_initializer=glorot, recurrent_initializer=orthogonal), units, None),
        "LSTM": (lambda: keras.layers.LSTM(
            lstm_units, kernel_initializer=glorot, recurrent_initializer=orthogonal),
            2 * lstm_units, sizes["lstm_exponents"]),
    }
    for name, (make, state, k) in models.items():
        layer, spectra = None, {}
        for method in ("householder", "cholesky"):
            def run(method=method, name=name, make=make, state=state, k=k):
                nonlocal layer
                if layer is None:
                    layer = make()
                    layer(x[:, :2])  # build
                kwargs = dict(num_exponents=k, qr_interval=1, qr_method=method)
                start = time.perf_counter()
                kr.dynamics.lyapunov_spectrum(layer, x, **kwargs)
                first = time.perf_counter() - start
                start = time.perf_counter()
                spectrum = kr.dynamics.lyapunov_spectrum(layer, x, **kwargs)
                warm = time.perf_counter() - start  # exponents are NumPy: synchronised
                spectra[method] = spectrum.exponents
                note = (f"S={state}, k={spectrum.num_exponents}, {spectrum.num_qr} QRs "
                        f"({spectrum.qr_method}), {spectrum.jacobian} Jacobian, "
                        f"first call {first:.2f} s, "
                        f"max {spectrum.max:.3f}")
                if method == "cholesky" and "householder" in spectra:
                    diff = np.max(np.abs(spectra["cholesky"] - spectra["householder"]))
                    note += f", max abs diff to householder {diff:.1e}"
                return warm, note

            results.guard("lyapunov_spectrum", f"{name} {method}", "s (warm call)", run,
                          key=(name, method))
    results.ratios("lyapunov_spectrum", lambda r: (r["key"][0], "householder"),
                   lambda k: "householder")


def _epoch_timer(backend):
    """A Keras callback recording each epoch's wall time; put it last, so that
    the other callbacks' `on_epoch_end` falls inside the epoch it times."""
    import keras

    class EpochTimer(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.seconds = []

        def on_epoch_begin(self, epoch, logs=None):
            backend.sync()
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            backend.sync()
            self.seconds.append(time.perf_counter() - self.start)

    return EpochTimer()


def _callback_cost(backend, model, x, y, batch, epochs, callback):
    """(median epoch with `callback` - median epoch without, median without):
    the same compiled model, fit twice, the first epoch of each fit left out."""
    plain = _epoch_timer(backend)
    model.fit(x, y, batch_size=batch, epochs=epochs, verbose=0, callbacks=[plain])
    timed = _epoch_timer(backend)
    model.fit(x, y, batch_size=batch, epochs=epochs, verbose=0, callbacks=[callback, timed])
    without = statistics.median(plain.seconds[1:] or plain.seconds)
    with_callback = statistics.median(timed.seconds[1:] or timed.seconds)
    return with_callback - without, without


def _survival_model(kind, size):
    """The PNNH net of the survival-callback case: `kr.applications.ResNet20`, or
    (`"blocks"`, for a smoke run) a stem and two basic `PNNHConvBlock`s sharing one coder."""
    import keras

    import keras_residual as kr

    if kind == "ResNet20":
        return kr.applications.ResNet20(connection="pnnh", input_shape=(size, size, 3),
                                        classes=10, classifier_activation=None)
    if kind != "blocks":
        raise ValueError(f"relu_model: {kind!r}")
    inputs = keras.Input((size, size, 3))
    y = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(inputs)
    coder = kr.layers.PNNHCoder(8)
    for _ in range(2):
        y = kr.layers.PNNHConvBlock(8, coder=coder)(y)
    outputs = keras.layers.Dense(10)(keras.layers.GlobalAveragePooling2D()(y))
    return keras.Model(inputs, outputs, name="pnnh_blocks")


def section_callbacks(backend, sizes, results):
    import keras
    import numpy as np

    import keras_residual as kr

    rng = np.random.default_rng(0)
    epochs, batch = sizes["epochs"], sizes["batch"]

    def lyapunov():
        length, units = sizes["length"], sizes["units"]
        x = rng.uniform(size=(sizes["samples"], length, 1)).astype("float32")
        y = rng.integers(0, 10, size=(sizes["samples"],))
        _seed(backend)
        model = keras.Sequential([
            keras.Input((length, 1)),
            kr.layers.WCRNN(units, coupling=0.02,
                            residual=kr.residuals.Rotational(angle=2 * math.pi / 28)),
            keras.layers.Dense(10),
        ])
        model.compile(keras.optimizers.Adam(1e-3),
                      keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        callback = kr.callbacks.LyapunovCallback(
            x[: sizes["probe"]], num_exponents=sizes["exponents"],
            warmup=sizes["lyapunov_warmup"])
        extra, epoch = _callback_cost(backend, model, x, y, batch, epochs, callback)
        calls = [r.seconds for r in callback.results]
        note = (f"WCRNN {units} units, T={length}, {sizes['samples']} samples, batch {batch}; "
                f"probe {sizes['probe']}, k={sizes['exponents']}; epoch without {epoch:.3f} s "
                f"({100 * extra / epoch:+.1f}%); callback's own calls "
                f"{', '.join(f'{c:.3f}' for c in calls)} s (first before training)")
        return extra, note, 1 + extra / epoch, "epoch without"

    def survival():
        size, n = sizes["image"], sizes["images"]
        x = rng.random((n, size, size, 3)).astype("float32")
        y = rng.integers(0, 10, size=(n,))
        _seed(backend)
        model = _survival_model(sizes["relu_model"], size)
        model.compile(keras.optimizers.SGD(0.01, momentum=0.9),
                      keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        callback = kr.callbacks.ReLUSurvivalCallback(x[: sizes["relu_probe"]])
        extra, epoch = _callback_cost(backend, model, x, y, sizes["image_batch"], epochs,
                                      callback)
        note = (f"{model.name} {size}x{size}, {n} images, batch {sizes['image_batch']}; "
                f"probe {sizes['relu_probe']}; epoch without {epoch:.3f} s "
                f"({100 * extra / epoch:+.1f}%)")
        return extra, note, 1 + extra / epoch, "epoch without"

    results.guard("callback cost", "LyapunovCallback", "s/epoch (extra)", lyapunov)
    results.guard("callback cost", "ReLUSurvivalCallback", "s/epoch (extra)", survival)


def section_applications(backend, sizes, results):
    import keras
    import numpy as np

    import keras_residual as kr

    for name, size, batch, classes in sizes["models"]:
        rng = np.random.default_rng(0)
        x_np = rng.random((batch, size, size, 3)).astype("float32")
        y_np = rng.integers(0, classes, size=(batch,)).astype("int32")
        for connection in ("residual", "pnnh"):
            def run(name=name, connection=connection):
                _seed(backend)
                model = getattr(kr.applications, name)(
                    connection=connection, input_shape=(size, size, 3), classes=classes,
                    classifier_activation=None)
                loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
                step = backend.train_step(model, keras.optimizers.SGD(0.01, momentum=0.9), loss,
                                          backend.tensor(x_np), backend.tensor(y_np))
                seconds = time_steps(backend, step, sizes["warmup"], sizes["steps"])
                return batch / seconds, f"batch {batch}, {model.count_params():,} parameters"

            results.guard("training throughput", f"{name} {size}x{size} {connection}",
                          "images/s", run, key=(name, connection))
    results.ratios("training throughput", lambda r: (r["key"][0], "residual"),
                   lambda k: "residual")


RUNNERS = {"rnn": section_rnn, "lyapunov": section_lyapunov, "callbacks": section_callbacks,
           "applications": section_applications}


# ------------------------------------------------------------------------------ main
def _use_checkout():
    """Makes this checkout importable as installed: `keras_residual` from the
    repository's root and `keras_residual.applications` from its top-level
    `applications/` (the package-dir mapping of pyproject.toml)."""
    import importlib.abc
    import importlib.util

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    folder = os.path.join(root, "applications")

    class Applications(importlib.abc.MetaPathFinder):
        def find_spec(self, fullname, path, target=None):
            if fullname != "keras_residual.applications":
                return None
            return importlib.util.spec_from_file_location(
                fullname, os.path.join(folder, "__init__.py"),
                submodule_search_locations=[folder])

    sys.path.insert(0, root)
    sys.meta_path.insert(0, Applications())
    for name in [m for m in sys.modules if m == "keras_residual" or
                 m.startswith("keras_residual.")]:
        del sys.modules[name]  # a half-imported copy from the failed attempt


def _tensorflow_imported():
    return sys.modules.get("tensorflow") is not None


def _write_json(path, report):
    def default(value):
        if isinstance(value, tuple):
            return list(value)
        return str(value)

    with open(path, "w") as f:
        json.dump(report, f, indent=1, default=default)


def main(argv=None):
    args = _parse(argv)
    name = os.environ.setdefault("KERAS_BACKEND", "jax")
    if name not in BACKENDS:
        print(f"benchmarks/gpu.py measures jax and torch (the GPU machine has no TensorFlow); "
              f"KERAS_BACKEND={name!r}: set KERAS_BACKEND=jax or torch.", file=sys.stderr)
        return 2
    started = time.perf_counter()
    notes = []
    backend = Backend(name)
    small = args.small or (not backend.gpu and not args.full)
    sizes = SMALL if small else FULL
    import keras

    try:
        import keras_residual  # noqa: F401 - the installed copy, else this checkout
    except ImportError:
        _use_checkout()
        import keras_residual  # noqa: F401

    if small:
        why = "--small" if args.small else "no GPU found"
        notes.append(f"small sizes ({why}): a smoke run of every code path, not a measurement")
        if backend.name == "jax":
            # A smoke run is mostly XLA compilation (each initializer shape, each train
            # step): unoptimised code compiles about 3x faster. Before the first compile.
            try:
                backend.jax.config.update("jax_disable_most_optimizations", True)
                notes.append("jax_disable_most_optimizations (compile time over speed)")
            except Exception:  # noqa: BLE001 - an option a later jax may drop
                pass
        if backend.name == "torch" and not backend.gpu:
            # Tiny matrices: torch's intra-op threads only add synchronisation on a busy CPU.
            backend.torch.set_num_threads(1)
            notes.append("torch.set_num_threads(1)")
    if keras.backend.backend() != name:
        notes.append(f"keras reports backend {keras.backend.backend()}")

    try:
        device = backend.describe()
    except Exception as error:  # noqa: BLE001 - informative only: never lose the run to it
        device = f"unknown ({type(error).__name__}: {_one_line(error)})"
    try:
        versions = backend.versions()
    except Exception as error:  # noqa: BLE001
        versions = {"error": f"{type(error).__name__}: {_one_line(error)}"}
    header = (f"keras-residual benchmarks/gpu.py, backend {name}\n"
              f"device: {device}\n"
              f"versions: {', '.join(f'{k} {v}' for k, v in versions.items())}\n"
              + "".join(f"note: {n}\n" for n in notes))
    print(header, flush=True)

    results = Results(None if args.max_seconds is None else started + args.max_seconds)
    report = {"backend": name, "device": device, "gpu": backend.gpu, "small": small,
              "versions": versions, "notes": notes, "sizes": {s: sizes[s] for s in args.sections},
              "section_seconds": {}, "rows": results.rows}
    for section in args.sections:
        start = time.perf_counter()
        print(f"## {section}", flush=True)
        try:
            RUNNERS[section](backend, sizes[section], results)
        except Exception as error:  # noqa: BLE001 - e.g. a failed import: record, go on
            traceback.print_exc()
            results.add(section, "(whole section)", error=f"{type(error).__name__}: "
                                                          f"{_one_line(error)}")
        try:
            _release(backend)
        except Exception:  # noqa: BLE001 - housekeeping only
            traceback.print_exc()
        report["section_seconds"][section] = time.perf_counter() - start
        report["tensorflow_imported"] = _tensorflow_imported()
        if args.json:
            _write_json(args.json, report)

    report["seconds"] = time.perf_counter() - started
    report["tensorflow_imported"] = _tensorflow_imported()
    report["table"] = results.table()
    if args.json:
        _write_json(args.json, report)
    errors = sum("error" in r for r in results.rows)
    skipped = sum("skipped" in r for r in results.rows)
    print("\n" + header)
    print(report["table"])
    print("\nseconds per section: " + ", ".join(
        f"{k} {v:.1f}" for k, v in report["section_seconds"].items()))
    print(f"{len(results.rows)} rows, {errors} errors, {skipped} skipped, "
          f"{report['seconds']:.1f} s; "
          f"tensorflow imported: {'yes' if report['tensorflow_imported'] else 'no'}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
