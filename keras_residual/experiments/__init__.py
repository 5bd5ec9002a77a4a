"""Experiment runner: grids of configurations x seeds, resumable, with statistics.

`from keras_residual import experiments as kx`:

- `kx.grid(base, **axes)` lists configurations; `kx.run_grid(run, configs,
  seeds, path)` runs each (configuration, seed) not yet in the JSON-lines
  results file `path`, appending one line per finished run, with a Keras
  progress bar over the grid; rerun, it resumes (`kx.ResultsFile`,
  `kx.run_key`).
- Run functions, each `(config, seed) -> dict`:
  `kx.train_sequence_model` (a WCRNN / SimpleRNN / LSTM on (permuted)
  sequential MNIST or Fashion-MNIST or the adding problem: convergence
  curve, test score, steps to a target, lambda_max before and after),
  `kx.train_flossing_copy` and `kx.train_flossing_xor` (gradient flossing),
  `kx.train_image_classifier` (plain / residual / PNNH ResNets: ReLU survival
  before and after training, accuracy, throughput).
- `kx.summarize(values)` gives mean ± std (n) and the 95 % Student-t
  interval; `kx.group`, `kx.welch_p`, `kx.fisher_p`; `kx.plots` draws score
  against a setting and convergence curves with a band over seeds.
- `kx.comma_list(item, choices)`: the `argparse` type of the scripts'
  comma-separated options (`--radii 0.9,1,1.02`).

The paper reproduction built on it is `experiments/reproduce.py` at the top
of the repository (its definitions, results and REPRODUCTION.md).
"""

from keras_residual.experiments import plots
from keras_residual.experiments.cli import comma_list
from keras_residual.experiments.flossing import train_flossing_copy
from keras_residual.experiments.flossing import train_flossing_xor
from keras_residual.experiments.images import train_image_classifier
from keras_residual.experiments.models import cifar_resnet
from keras_residual.experiments.models import make_optimizer
from keras_residual.experiments.models import make_recurrent
from keras_residual.experiments.models import make_residual
from keras_residual.experiments.results import ResultsFile
from keras_residual.experiments.results import run_key
from keras_residual.experiments.runner import environment
from keras_residual.experiments.runner import format_seconds
from keras_residual.experiments.runner import grid
from keras_residual.experiments.runner import run_grid
from keras_residual.experiments.sequence import train_sequence_model
from keras_residual.experiments.stats import Summary
from keras_residual.experiments.stats import fisher_p
from keras_residual.experiments.stats import format_number
from keras_residual.experiments.stats import format_summary
from keras_residual.experiments.stats import group
from keras_residual.experiments.stats import summarize
from keras_residual.experiments.stats import welch_p
from keras_residual.experiments.tasks import delayed_copy
from keras_residual.experiments.tasks import delayed_xor
from keras_residual.experiments.tasks import finite_or_none
from keras_residual.experiments.tasks import load_sequence_task
from keras_residual.experiments.tasks import normalized_score

__all__ = [
    "grid", "run_grid", "ResultsFile", "run_key", "environment", "format_seconds",
    "train_sequence_model", "train_flossing_copy", "train_flossing_xor",
    "train_image_classifier", "load_sequence_task", "normalized_score", "finite_or_none",
    "delayed_copy", "delayed_xor", "make_residual", "make_recurrent", "make_optimizer",
    "cifar_resnet", "summarize", "format_summary", "format_number", "Summary", "group", "welch_p", "fisher_p",
    "plots", "comma_list",
]
