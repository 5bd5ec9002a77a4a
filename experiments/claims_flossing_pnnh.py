"""Gradient flossing (delayed copy, delayed XOR) and PNNH (depth, parameter-matched).
Each function takes a claim's records and the figure's path and returns a
`claim_tools.Section`."""

import collections
import math

from keras_residual.experiments import plots
from keras_residual.experiments import stats

from claim_tools import (
    P,
    Section,
    cell,
    res,
    values,
    mean,
    legend,
    table,
    p_text,
    combine,
    by,
    pair_verdict,
)


def flossing_copy(records, figure):
    rows, pooled = [], collections.defaultdict(lambda: [0, 0])
    models = by(records, "model")
    fig, axes = plots.new_figure(1, max(1, len(models)), width=4.0)
    for ax, ((model,), runs) in zip(axes[0], models.items()):
        for (setting,), cell_runs in by(runs, "setting").items():
            delays, rates = [], []
            for (delay,), dr in sorted(by(cell_runs, "delay").items()):
                wins = [r for r in dr if res(r, "success")]
                steps = values(wins, "steps_to_threshold")
                rows.append([model, setting, delay, f"{len(wins)}/{len(dr)}",
                             f"{sorted(steps)[len(steps) // 2]}" if steps else "—",
                             f"{mean(dr, 'lambda_max_init'):+.3f} → "
                             f"{mean(dr, 'lambda_max_start'):+.3f} → "
                             f"{mean(dr, 'lambda_max_final'):+.3f}"])
                pooled[setting][0] += len(wins)
                pooled[setting][1] += len(dr)
                delays.append(delay)
                rates.append(len(wins) / len(dr))
            ax.plot(delays, rates, marker="o", label=setting)
        ax.set_title(model, fontsize=9)
        ax.set_xlabel("delay")
        ax.set_ylabel("success rate (val. accuracy ≥ 0.95)")
        ax.set_ylim(-0.05, 1.05)
        legend(ax, 6)
    rows.sort(key=lambda r: (r[0], r[2], r[1]))
    reasons, verdicts = [], []
    plain = pooled.get("plain", [0, 0])
    for setting in ("before", "during"):
        if setting not in pooled or not plain[1]:
            continue
        wins, n = pooled[setting]
        p = stats.fisher_p(wins, n, plain[0], plain[1])
        text = (f"flossing {setting} training: {wins}/{n} successes against {plain[0]}/"
                f"{plain[1]} plain, pooled over models and delays (one-sided Fisher p = "
                f"{p_text(p)})")
        verdicts.append("reproduced" if p < P and wins > plain[0] else
                        "partly reproduced" if wins > plain[0] else "not reproduced")
        reasons.append(text)
    tables = [table(["model", "setting", "delay", "success", "median steps to threshold",
                     "λ_max init → start → final"], rows)]
    return Section(combine(verdicts), reasons, tables,
                   plots.save(fig, figure))



def flossing_xor(records, figure):
    rows, reasons, verdicts = [], [], []
    delays = by(records, "delay")
    fig, axes = plots.new_figure(1, max(1, len(delays)), width=4.0)
    for ax, ((delay,), runs) in zip(axes[0], sorted(delays.items())):
        settings = by(runs, "setting")
        for (setting,), sr in settings.items():
            rows.append([delay, setting, cell(values(sr, "final_accuracy")),
                         f"{mean(sr, 'lambda_max_init'):+.3f} → "
                         f"{mean(sr, 'lambda_max_start'):+.3f} → "
                         f"{mean(sr, 'lambda_max_final'):+.3f}"])
            plots.plot_curves(ax, sr, y="accuracy", label=setting)
        ax.set_title(f"delayed XOR, d = {delay}", fontsize=9)
        ax.set_xlabel("training step")
        ax.set_ylabel("accuracy (fresh sequences)")
        legend(ax, 6)
        for flossed in ("before", "before_during"):
            if ("plain",) in settings and (flossed,) in settings:
                verdict, reason = pair_verdict(settings, "final_accuracy", ("plain",),
                                                (flossed,), f"d = {delay}, {flossed} vs plain")
                verdicts.append(verdict)
                reasons.append(reason)
    tables = [table(["delay", "setting", "final accuracy", "λ_max init → start → final"], rows)]
    return Section(combine(verdicts), reasons, tables,
                   plots.save(fig, figure))



def pnnh_depth(records, figure):
    rows, reasons, verdicts = [], [], []
    fig, axes = plots.new_figure(1, 3, width=4.2)
    groups = by(records, "depth", "connection")
    for (depth, connection), runs in sorted(groups.items()):
        rows.append([depth, connection, f"{runs[0]['result']['parameters']:,}",
                     cell(values(runs, "survival_init.mean"), 3, False),
                     cell(values(runs, "survival_init.last_block"), 3, False),
                     cell(values(runs, "survival_final.mean"), 3, False),
                     cell(values(runs, "test_accuracy"))])
        style = {20: "-", 56: "--", 110: ":"}.get(depth, "-.")
        color = {"plain": "tab:red", "residual": "tab:blue", "pnnh": "tab:green"}[connection]
        blocks = [res(r, "survival_init.blocks") for r in runs]
        width = min(len(b) for b in blocks)
        curve = [sum(b[i] for b in blocks) / len(blocks) for i in range(width)]
        axes[0][0].plot(range(1, width + 1), curve, style, color=color,
                        label=f"{connection} {depth}")
        plots.plot_curves(axes[0][1], runs, y="val_accuracy", color=color,
                          label=f"{connection} {depth}")
    for depth in sorted({k[0] for k in groups}):
        if (depth, "plain") not in groups:
            continue
        for other in ("residual", "pnnh"):
            if (depth, other) not in groups:
                continue
            a, b = groups[(depth, "plain")], groups[(depth, other)]
            for key, what in (("survival_init.mean", "survival at init"),
                              ("test_accuracy", "test accuracy")):
                verdict, reason = pair_verdict({("a",): a, ("b",): b}, key, ("a",), ("b",),
                                                f"depth {depth}, {what}, {other} vs plain")
                if depth > 20 or key.startswith("survival"):
                    verdicts.append(verdict)
                    reasons.append(reason)
    for (connection,), runs in by(records, "connection").items():
        plots.plot_score_vs(axes[0][2], by(runs, "depth"), lambda k: k[0], "test_accuracy",
                            label=connection)
    axes[0][0].axhline(0.5, color="0.6", lw=0.8)
    axes[0][0].set(xlabel="block", ylabel="ReLU survival at init (block output)")
    axes[0][1].set(xlabel="training step", ylabel="validation accuracy")
    axes[0][2].set(xlabel="depth", ylabel="test accuracy")
    for ax in axes[0]:
        legend(ax, 5)
    tables = [table(["depth", "connection", "parameters", "survival at init (all ReLUs)",
                     "survival at init (last block)", "survival trained (all ReLUs)",
                     "test accuracy"], rows)]
    return Section(combine(verdicts), reasons, tables,
                   plots.save(fig, figure))



def pnnh_matched(records, figure):
    rows, reasons, verdicts = [], [], []
    groups = by(records, "connection", "width")
    fig, axes = plots.new_figure(1, 2, width=4.5)
    for (connection, width), runs in sorted(groups.items()):
        params = runs[0]["result"]["parameters"]
        rows.append([connection, width, f"{params:,}", cell(values(runs, "test_accuracy")),
                     cell(values(runs, "images_per_second"), 0, False)])
        for ax, key in zip(axes[0], ("parameters", "images_per_second")):
            xs = [res(r, key) for r in runs]
            ys = [res(r, "test_accuracy") for r in runs]
            ax.plot(xs, ys, "o", color="tab:blue" if connection == "residual" else "tab:green",
                    label=f"{connection} w{width}")
    axes[0][0].set(xlabel="parameters", ylabel="test accuracy")
    axes[0][1].set(xlabel="training images / s", ylabel="test accuracy")
    for ax in axes[0]:
        legend(ax, 6)
    reference = next((v for (c, _), v in groups.items() if c == "residual"), None)
    if reference is not None:
        ref_params = reference[0]["result"]["parameters"]
        ref_acc = values(reference, "test_accuracy")
        ref_rate = mean(reference, "images_per_second")
        for (connection, width), runs in sorted(groups.items()):
            params = runs[0]["result"]["parameters"]
            if connection != "pnnh" or params >= ref_params:
                continue
            acc = values(runs, "test_accuracy")
            diff = stats.summarize(acc).mean - stats.summarize(ref_acc).mean
            p = stats.welch_p(acc, ref_acc)
            on_par = diff >= -0.01 or not (math.isfinite(p) and p < P)
            rate = mean(runs, "images_per_second") / ref_rate
            verdicts.append("reproduced" if on_par else "not reproduced")
            reasons.append(
                f"PNNH width {width} ({params / ref_params:.2f}x the residual net's "
                f"parameters): accuracy {diff:+.3f} against the residual ResNet20 (Welch p = "
                f"{p_text(p)}), {'on par' if on_par else 'lower'}; throughput {rate:.2f}x")
    tables = [table(["connection", "width", "parameters", "test accuracy",
                     "training images / s"], rows)]
    return Section(combine(verdicts), reasons, tables,
                   plots.save(fig, figure))
