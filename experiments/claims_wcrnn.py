"""Paper 1 (weakly coupled residual RNNs): edge of chaos, adding problem, frequency,
heterogeneity, Elman initialisation. Each function takes a claim's records and the figure's
path and returns a `claim_tools.Section`."""

import collections
import math

from keras_residual.experiments import plots
from keras_residual.experiments import stats

from claim_tools import (
    P,
    NEAR_CRITICAL,
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
    lambda_cell,
    score_name,
    by_setting,
    pair_verdict,
    nan_low,
    residual_text,
)


def edge_of_chaos(records, figure):
    reasons, tables, verdicts = [], [], []
    fig, axes = plots.new_figure(1, 2, width=5.0)
    for setting, group in collections.OrderedDict(
            (k, v) for k, v in sorted(by_setting(records).items())).items():
        radii = by(group, "residual.radius")
        rows = []
        for (r,), runs in sorted(radii.items()):
            rows.append([f"{r:g}", f"{math.log(r):+.4f}", cell(values(runs, "test_metric")),
                         cell(values(runs, "test_score")), cell(values(runs, "auc"), 3, False),
                         lambda_cell(runs)])
        first = group[0]
        tables.append(f"**{setting}**\n\n" + table(
            ["r", "log r", score_name(first), "normalised test score", "auc (convergence)",
             "λ_max init → trained"], rows))
        plots.plot_score_vs(axes[0][0], radii, lambda k: math.log(k[0]), "test_score",
                            label=setting)
        plots.plot_score_vs(axes[0][1], radii, lambda k: math.log(k[0]), "auc", label=setting)
        verdict, reason = _peak_verdict(radii, setting)
        verdicts.append(verdict)
        reasons.append(reason)
    for ax, name in zip(axes[0], ("normalised test score", "auc (mean validation score)")):
        ax.axvline(0.0, color="0.6", lw=0.8, ls=":")
        ax.set_xlabel("log r")
        ax.set_ylabel(name)
        legend(ax, 6)
    return Section(combine(verdicts), reasons, tables, plots.save(fig, figure))



def _peak_verdict(radii, setting):
    means = {k[0]: mean(v, "test_score") for k, v in radii.items()}
    finite = {r: m for r, m in means.items() if math.isfinite(m)}
    if not finite:
        return "not reproduced", f"{setting}: every run diverged"
    best = max(finite, key=finite.get)
    low, high = min(radii)[0], max(radii)[0]
    lo_band, hi_band = NEAR_CRITICAL
    if not lo_band <= best <= hi_band:
        return "not reproduced", (
            f"{setting}: the best radius is r = {best:g} (mean normalised score "
            f"{finite[best]:.3f}), outside the near-critical band [{lo_band}, {hi_band}]")
    pairs = [(r, stats.welch_p(values(radii[(best,)], "test_score"),
                               values(radii[(r,)], "test_score"))) for r in (low, high)]
    worse = [(r, p) for r, p in pairs if r != best]
    significant = all(math.isfinite(p) and p < P and finite.get(r, -1e9) < finite[best]
                      or not math.isfinite(finite.get(r, float("nan"))) for r, p in worse)
    text = ", ".join(f"r = {r:g}: p = {p_text(p)}" for r, p in worse)
    if significant:
        return "reproduced", (f"{setting}: best at r = {best:g} ({finite[best]:.3f}), above "
                              f"both ends of the grid (Welch {text})")
    return "partly reproduced", (
        f"{setting}: best at r = {best:g} ({finite[best]:.3f}) in the near-critical band, "
        f"but not significantly above both ends of the grid (Welch {text})")



def adding(records, figure):
    """A table and panel per (length, training budget); per length the verdict
    of the best WCRNN setting over the budgets (most seeds solved, then the
    lowest mean best validation MSE)."""
    tables, reasons, verdicts = [], [], []
    panels = sorted({(r["config"]["length"], r["config"]["steps"]) for r in records})
    fig, axes = plots.new_figure(1, len(panels), width=5.0)
    best = {}  # length -> (solved, n, -mse, name, budget, mse)
    for ax, (length, budget) in zip(axes[0], panels):
        rows = []
        panel = [r for r in records
                 if (r["config"]["length"], r["config"]["steps"]) == (length, budget)]
        for (name,), runs in by(panel, "_label").items():
            solved = [r for r in runs if res(r, "steps_to_target") is not None]
            steps = values(solved, "steps_to_target")
            rows.append([name, f"{len(solved)}/{len(runs)}", cell(steps, 0, False) if steps
                         else f"— (> {budget:,})", cell(values(runs, "test_metric"), 4, False),
                         lambda_cell(runs)])
            plots.plot_curves(ax, runs, y="val_metric", label=name)
            if name.startswith("WCRNN"):
                mse = stats.summarize(values(runs, "best_val_metric")).mean
                mse = mse if math.isfinite(mse) else math.inf  # diverged seeds rank last
                rank = (len(solved) / len(runs), -mse)
                if length not in best or rank > best[length][0]:
                    best[length] = (rank, name, len(solved), len(runs), budget, mse)
        ax.axhline(0.01, color="k", lw=0.8, ls=":")
        ax.axhline(1 / 6, color="0.6", lw=0.8, ls="--")
        ax.set_yscale("log")
        ax.set_title(f"adding problem, T = {length}, {budget:,} steps", fontsize=9)
        ax.set_xlabel("training step")
        ax.set_ylabel("validation MSE")
        legend(ax, 6)
        tables.append(f"**T = {length}, budget {budget:,} steps** (target: validation MSE "
                      "≤ 0.01; baseline 0.167)\n\n"
                      + table(["model", "solved", "steps to MSE ≤ 0.01 (solved runs)",
                               "final test MSE", "λ_max init → trained"], rows))
    for length in sorted(best):
        _, name, solved, n, budget, best_mse = best[length]
        where = f"T = {length}: {name}, {budget:,}-step budget,"
        if solved == n:
            verdicts.append("reproduced")
            reasons.append(f"{where} solved it in {solved}/{n} seeds")
        elif solved:
            verdicts.append("partly reproduced")
            reasons.append(f"{where} solved it in {solved}/{n} seeds only")
        else:
            verdicts.append("not reproduced")
            reasons.append(f"T = {length}: no WCRNN setting reached MSE ≤ 0.01 within "
                           f"{budget:,} steps (best: {name}, mean best validation MSE "
                           f"{best_mse:.4f})")
    return Section(combine(verdicts), reasons, tables,
                   plots.save(fig, figure))


def frequency(records, figure):
    tables, reasons, verdicts = [], [], []
    fig, axes = plots.new_figure(1, 1, width=5.5)
    for setting, group in by_setting(records).items():
        factors = by(group, "residual.angle_factor")
        rows = [[f"{f:g}", f"{f * 2 * math.pi / 28:.4f}", cell(values(runs, "test_metric")),
                 cell(values(runs, "auc"), 3, False), lambda_cell(runs)]
                for (f,), runs in sorted(factors.items())]
        tables.append(f"**{setting}**\n\n" + table(
            ["angle / angle0", "angle (rad/step)", "test accuracy", "auc", "λ_max init → trained"],
            rows))
        plots.plot_score_vs(axes[0][0], factors, lambda k: math.log2(k[0]), "test_score",
                            label=setting)
        if group[0]["config"]["task"].startswith("p"):
            spread = [mean(runs, "test_score") for runs in factors.values()]
            reasons.append(f"{setting} (control): normalised scores span "
                           f"{min(spread):.3f}–{max(spread):.3f} over the angles")
            continue
        verdict, reason = _frequency_verdict(factors, setting)
        verdicts.append(verdict)
        reasons.append(reason)
    ax = axes[0][0]
    ax.axvline(0.0, color="0.6", lw=0.8, ls=":")
    ax.set_xlabel("log2(angle / angle0), angle0 = 2π/28")
    ax.set_ylabel("normalised test score")
    legend(ax, 6)
    return Section(combine(verdicts), reasons, tables,
                   plots.save(fig, figure))



def _frequency_verdict(factors, setting):
    scores = {k[0]: values(v, "test_score") for k, v in factors.items()}
    means = {f: stats.summarize(v).mean for f, v in scores.items()}
    far = max(means)
    at = means.get(1.0, float("nan"))
    p_far = stats.welch_p(scores.get(1.0, []), scores[far])
    ends = [means[f] for f in (0.25, 4.0) if f in means]
    best = max((f for f in means if math.isfinite(means[f])), key=means.get, default=None)
    text = (f"{setting}: angle0 scores {at:.3f}, the far angle ({far:.1f} angle0) "
            f"{means[far]:.3f} (Welch p = {p_text(p_far)}); best factor {best:g}")
    beats_far = math.isfinite(p_far) and p_far < P and at > means[far]
    if beats_far and all(at > e for e in ends):
        return "reproduced", text
    if beats_far or best in (0.5, 1.0, 2.0):
        return "partly reproduced", text
    return "not reproduced", text



def heterogeneity(records, figure):
    tables, reasons, verdicts = [], [], []
    settings = by_setting(records)
    fig, axes = plots.new_figure(1, max(1, len(settings)), width=4.5)
    for ax, (setting, group) in zip(axes[0], settings.items()):
        kinds = by(group, "residual.kind")
        rows = [[residual_text(runs[0]["config"]["residual"]), cell(values(runs, "test_metric")),
                 cell(values(runs, "auc"), 3, False), lambda_cell(runs)]
                for _, runs in kinds.items()]
        tables.append(f"**{setting}**\n\n" + table(
            ["residual", "test accuracy", "auc", "λ_max init → trained"], rows))
        for (kind,), runs in kinds.items():
            plots.plot_curves(ax, runs, label=kind)
        ax.set_title(setting, fontsize=8)
        ax.set_xlabel("training step")
        ax.set_ylabel("validation accuracy")
        legend(ax, 6)
        if {("homogeneous",), ("heterogeneous",)} <= set(kinds):
            verdict, reason = pair_verdict(kinds, "test_score", ("homogeneous",),
                                            ("heterogeneous",), setting)
            verdicts.append(verdict)
            reasons.append(reason + " (normalised test score, heterogeneous vs homogeneous)")
    return Section(combine(verdicts), reasons, tables,
                   plots.save(fig, figure))



def elman(records, figure):
    tables, reasons, verdicts = [], [], []
    settings = by_setting(records)
    fig, axes = plots.new_figure(1, max(1, len(settings)), width=4.5)
    for ax, (setting, group) in zip(axes[0], settings.items()):
        rows, best = [], {}
        for (init,), runs in by(group, "_init").items():
            rates = by(runs, "optimizer.learning_rate")
            for (lr,), cell_runs in sorted(rates.items()):
                rows.append([init, f"{lr:g}", cell(values(cell_runs, "test_metric")),
                             lambda_cell(cell_runs)])
            top = max(rates.values(), key=lambda v: nan_low(mean(v, "test_score")))
            best[init] = top
            plots.plot_score_vs(ax, rates, lambda k: math.log10(k[0]), "test_score", label=init)
        ax.set_title(setting, fontsize=8)
        ax.set_xlabel("log10 learning rate (SGD, momentum 0.9)")
        ax.set_ylabel("normalised test score")
        legend(ax, 5)
        tables.append(f"**{setting}** (SGD with momentum 0.9, clipnorm 1)\n\n" + table(
            ["recurrent initialisation", "learning rate", "test accuracy",
             "λ_max init → trained"], rows))
        weak = [k for k in best if k.startswith("WeaklyCoupled")]
        if "orthogonal" in best and weak:
            top = max(weak, key=lambda k: nan_low(mean(best[k], "test_score")))
            verdict, reason = pair_verdict({("o",): best["orthogonal"], ("w",): best[top]},
                                            "test_score", ("o",), ("w",), setting)
            verdicts.append(verdict)
            reasons.append(reason + f" (normalised test score at each one's best learning "
                           f"rate: {top} vs orthogonal)")
    return Section(combine(verdicts), reasons, tables,
                   plots.save(fig, figure))
