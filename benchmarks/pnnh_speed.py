"""Training throughput and size of PNNH, residual and plain ResNet-style stacks.

Builds three image classifiers that differ only in the blocks' connection
(PNNHConvBlock, ResidualConvBlock, PlainConvBlock; same learner, depth and
width), trains each for a few steps on random data on the current backend
(`KERAS_BACKEND`), and prints parameters and images/s with ratios against the
residual stack measured in the same run. Then measures what
`ReLUSurvivalCallback` costs per epoch on the PNNH stack.

Architecture: a 3x3 stem (conv-BN-ReLU) of `width` channels, three stages of
`blocks` basic blocks with widths (w, 2w, 4w), the first block of stages 2
and 3 with stride 2, global average pooling and a 10-way dense head. PNNH:
one coder per stage serves every block whose shapes agree (all of stage 1;
blocks 2.. of stages 2 and 3); a stage's first, down-sampling block has its
own coder. Residual: identity shortcuts, projections where shapes change.

Usage:

    KERAS_BACKEND=jax python benchmarks/pnnh_speed.py
    KERAS_BACKEND=torch python benchmarks/pnnh_speed.py --blocks 3 --image-size 32
"""

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_residual as kr  # noqa: E402

BLOCKS = {
    "pnnh": kr.layers.PNNHConvBlock,
    "residual": kr.layers.ResidualConvBlock,
    "plain": kr.layers.PlainConvBlock,
}


def build(kind, image_size, width, blocks, classes=10):
    inputs = keras.Input((image_size, image_size, 3))
    y = keras.layers.Conv2D(width, 3, padding="same", use_bias=False)(inputs)
    y = keras.layers.BatchNormalization()(y)
    y = keras.layers.ReLU()(y)
    channels = width
    for stage, filters in enumerate((width, 2 * width, 4 * width)):
        coder = None
        for i in range(blocks):
            strides = 2 if stage > 0 and i == 0 else 1
            if kind == "pnnh":
                if strides == 1 and channels == filters:
                    coder = coder or kr.layers.PNNHCoder(filters, name=f"stage{stage + 1}_coder")
                    block = BLOCKS[kind](filters, strides=strides, coder=coder)
                else:
                    block = BLOCKS[kind](filters, strides=strides)
            else:
                block = BLOCKS[kind](filters, strides=strides)
            y = block(y)
            channels = filters
    y = keras.layers.GlobalAveragePooling2D()(y)
    outputs = keras.layers.Dense(classes)(y)
    return keras.Model(inputs, outputs, name=f"{kind}_stack")


def compile_model(model):
    model.compile(
        optimizer=keras.optimizers.SGD(0.05, momentum=0.9),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )


def data(args, seed=0):
    rng = np.random.default_rng(seed)
    n = args.batch * args.steps
    x = rng.random((n, args.image_size, args.image_size, 3)).astype("float32")
    y = rng.integers(0, 10, n)
    return x, y


def step_times(models, x, y, args):
    """Seconds per training step of each model, interleaved round-robin.

    Steps are timed one by one with `train_on_batch` (which returns the loss
    as NumPy, so the step has finished), alternating between the models so
    that load from other processes hits all of them alike; the median is
    robust to such bursts.
    """
    for model in models.values():
        compile_model(model)
        for i in range(2):  # warm-up: traces / compiles the train step
            batch = slice(i * args.batch, (i + 1) * args.batch)
            model.train_on_batch(x[batch], y[batch])
    times = {kind: [] for kind in models}
    for _ in range(args.repeats):
        for kind, model in models.items():
            for i in range(args.steps):
                batch = slice(i * args.batch, (i + 1) * args.batch)
                start = time.perf_counter()
                model.train_on_batch(x[batch], y[batch])
                times[kind].append(time.perf_counter() - start)
    return {kind: float(np.median(t)) for kind, t in times.items()}


class EpochTimer(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.durations = getattr(self, "durations", []) + [time.perf_counter() - self._start]


class TimedSurvival(kr.callbacks.ReLUSurvivalCallback):
    """The callback, timing its own end-of-epoch work."""

    def on_epoch_end(self, epoch, logs=None):
        start = time.perf_counter()
        super().on_epoch_end(epoch, logs)
        self.costs = getattr(self, "costs", []) + [time.perf_counter() - start]


def callback_cost(args, x, y):
    keras.utils.set_random_seed(0)
    model = build("pnnh", args.image_size, args.width, args.blocks)
    compile_model(model)
    model.fit(x[: args.batch * 2], y[: args.batch * 2], batch_size=args.batch, epochs=1, verbose=0)
    timer = EpochTimer()
    survival = TimedSurvival(x[: args.probe])
    # The timer's epoch excludes the survival callback (it runs after it).
    model.fit(x, y, batch_size=args.batch, epochs=5, verbose=0, callbacks=[timer, survival])
    relus = len(survival.rates[0])
    return timer.durations, survival.costs, relus


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image-size", type=int, default=16)
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--blocks", type=int, default=2, help="blocks per stage (3 stages)")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=6, help="batches per round / epoch")
    parser.add_argument("--repeats", type=int, default=4, help="interleaved timing rounds")
    parser.add_argument("--probe", type=int, default=64, help="probe batch of the callback")
    args = parser.parse_args()

    backend = keras.backend.backend()
    x, y = data(args)
    print(
        f"backend={backend} keras={keras.__version__} image={args.image_size}x{args.image_size}x3 "
        f"width={args.width} blocks/stage={args.blocks} (depth {3 * args.blocks} blocks) "
        f"batch={args.batch} steps={args.steps}",
        flush=True,
    )
    models = {}
    for kind in ("residual", "pnnh", "plain"):
        keras.utils.set_random_seed(0)
        models[kind] = build(kind, args.image_size, args.width, args.blocks)
    steps = step_times(models, x, y, args)
    results = {kind: (models[kind].count_params(), args.batch / steps[kind]) for kind in models}
    ref_params, ref_speed = results["residual"]
    print(f"\n| stack ({backend}) | parameters | x residual | images/s | x residual |")
    print("|---|---:|---:|---:|---:|")
    for kind, (params, speed) in results.items():
        print(
            f"| {kind} | {params:,} | {params / ref_params:.3f} | {speed:,.0f} | "
            f"{speed / ref_speed:.2f} |"
        )

    epochs, costs, relus = callback_cost(args, x, y)
    speed = results["pnnh"][1]
    print(
        f"\nReLUSurvivalCallback on the pnnh stack ({relus} ReLUs, probe batch {args.probe}), "
        f"epochs of {len(x)} images:"
    )
    for i, (epoch, cost) in enumerate(zip(epochs, costs)):
        print(f"  epoch {i + 1}: {epoch:.3f} s, callback {cost:.3f} s = {100 * cost / epoch:.1f}%")
    steady_cost = float(np.median(costs[1:]))
    steady_epoch = float(np.median(epochs[1:]))
    cifar_epoch = 50_000 / speed
    print(
        f"  after the first (compiling) measurement: median {steady_cost:.3f} s = "
        f"{100 * steady_cost / steady_epoch:.1f}% of a {len(x)}-image epoch, "
        f"{100 * steady_cost / cifar_epoch:.2f}% of a CIFAR-10-sized epoch (50,000 images, "
        f"{cifar_epoch:.0f} s at {speed:,.0f} images/s); first measurement {costs[0]:.3f} s"
    )


if __name__ == "__main__":
    main()
