"""Each claim of the papers: its table, verdict (with the measured cause) and figure.

`assess(claim, records, figures)` turns the run records of a claim's
experiments into a `Section`: a Markdown table of mean ± std (n) with the 95 %
Student-t interval, a verdict computed by a stated rule, and a figure. The
settings actually run are read from the records by `report.py`, never typed
in. Verdicts: "reproduced", "partly reproduced", "not reproduced" (each with
the measured reason), "too few runs to judge" (fewer than 2 seeds per
setting, or no runs of a comparison yet), or "no results yet". The rules are
in `claims_wcrnn.py` (paper 1) and `claims_flossing_pnnh.py`.
"""

import collections
import json
import os

import claims_flossing_pnnh
import claims_wcrnn
from claim_tools import P  # noqa: F401 - the significance level, for the report
from claim_tools import (
    TOO_FEW,
    Section,
    init_text,
    model_label,
)


def label_records(records):
    """Add the grouping labels the tables use (`_label`, `_init`) to the configs."""
    for r in records:
        c = r["config"]
        if "model" in c and "task" in c:
            c["_label"] = model_label(c)
        if c.get("model") == "simple_rnn" and "task" in c and c["task"] != "adding":
            c["_init"] = init_text(c.get("recurrent_init") or {"kind": "orthogonal"})
    return records


ASSESS = {
    "edge_of_chaos": claims_wcrnn.edge_of_chaos, "adding": claims_wcrnn.adding,
    "frequency": claims_wcrnn.frequency, "heterogeneity": claims_wcrnn.heterogeneity,
    "elman": claims_wcrnn.elman, "flossing_copy": claims_flossing_pnnh.flossing_copy,
    "flossing_xor": claims_flossing_pnnh.flossing_xor,
    "pnnh_depth": claims_flossing_pnnh.pnnh_depth,
    "pnnh_matched": claims_flossing_pnnh.pnnh_matched,
}


def assess(claim, records, figure_dir):
    """The `Section` of a claim from its records (none: "no results yet")."""
    if not records:
        return Section("no results yet", [], [])
    records = label_records([dict(r, config=dict(r["config"])) for r in records])
    figure = os.path.join(figure_dir, f"{claim}.png")
    section = ASSESS[claim](records, figure)
    seeds = collections.Counter(json.dumps(r["config"], sort_keys=True) for r in records)
    if max(seeds.values()) < 2:
        section.verdict = TOO_FEW
        section.reasons = ["every setting has a single seed so far; the comparisons need at "
                           "least 2 per setting (the plan has 3, and 5 for flossing)"]
    return section
