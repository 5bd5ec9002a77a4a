"""Shared pieces of the claims' assessments: table cells, grouping, labels, tests.

Used by `claims_wcrnn.py` and `claims_flossing_pnnh.py`; `claims.py` says how a
claim is assessed and which verdicts there are.
"""

import collections
import dataclasses
import math

from keras_residual.experiments import stats

P = 0.05  # significance level of every test below
NEAR_CRITICAL = (0.95, 1.02)
TOO_FEW = "too few runs to judge"


@dataclasses.dataclass
class Section:
    verdict: str
    reasons: list
    tables: list
    figure: str = None


def cell(values, digits=3, interval=True):
    return stats.format_summary(stats.summarize(values), digits, interval)


def res(record, key):
    return stats.lookup(record["result"], key)


def values(records, key):
    return [res(r, key) for r in records]


def mean(records, key):
    return stats.summarize(values(records, key)).mean


def legend(ax, size=6):
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=size)


def table(headers, rows):
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def p_text(p):
    return "—" if not math.isfinite(p) else (f"{p:.3f}" if p >= 0.001 else f"{p:.1e}")


def combine(verdicts):
    """One verdict from several settings' verdicts."""
    if not verdicts:
        return TOO_FEW
    kinds = set(verdicts)
    if kinds == {"reproduced"}:
        return "reproduced"
    if "reproduced" in kinds or "partly reproduced" in kinds:
        return "partly reproduced"
    return "not reproduced"


def setting_label(record):
    c = record["config"]
    if "task" not in c:
        return ""
    data = res(record, "data") or {}
    label = c["task"]
    if c["task"] == "adding":
        return f"adding, T = {c['length']}"
    label += f" ({data.get('source', '?')}, " + ("standardised" if c.get("standardize")
                                                  else "raw pixels") + ")"
    return label


def by(records, *keys):
    return stats.group(records, keys)


def lambda_cell(records):
    a, b = mean(records, "lyapunov_max_init"), mean(records, "lyapunov_max_final")
    return f"{a:+.4f} → {b:+.4f}"


def score_name(record):
    return "test accuracy" if res(record, "metric") == "accuracy" else "test MSE"


def by_setting(records):
    groups = collections.OrderedDict()
    for r in records:
        groups.setdefault(setting_label(r), []).append(r)
    return groups


def pair_verdict(group, key, a, b, setting, higher="better"):
    """Welch comparison of b over a on `key`."""
    va, vb = values(group[a], key), values(group[b], key)
    ma, mb = stats.summarize(va).mean, stats.summarize(vb).mean
    p = stats.welch_p(va, vb)
    text = f"{setting}: {mb:.3f} vs {ma:.3f} (Welch p = {p_text(p)})"
    if mb > ma and math.isfinite(p) and p < P:
        return "reproduced", text
    if mb > ma:
        return "partly reproduced", text + ", higher but not significantly"
    return "not reproduced", text + ", not higher"


def nan_low(x):
    return x if math.isfinite(x) else -1e9


def model_label(config):
    if config.get("model") == "wcrnn":
        residual = config["residual"]
        kind = residual["kind"]
        detail = {"identity": "R = I", "homogeneous": f"r = {residual.get('radius')}",
                  "heterogeneous": f"r in {residual.get('radius_range')}"}.get(kind, kind)
        return (f"WCRNN {kind} ({detail}), coupling {config['coupling']}, "
                f"lr {config['optimizer']['learning_rate']:g}")
    return (f"{config['model']}, lr {config['optimizer']['learning_rate']:g}")


def residual_text(spec):
    if spec["kind"] == "heterogeneous":
        return f"heterogeneous r in {spec['radius_range']}"
    return f"{spec['kind']} r = {spec.get('radius')}"


def init_text(spec):
    if spec["kind"] != "weakly_coupled":
        return spec["kind"]
    return (f"WeaklyCoupledResidual({residual_text(spec['residual'])}"
            + (f", angle0" if spec["residual"]["kind"] == "rotational" else "")
            + f", coupling {spec['coupling']})")
