"""Figures of runs for notebooks and reports: learning curves, attention, run comparisons.

Each function returns a matplotlib Figure and, given save=PATH, also writes it as a PNG.
Runs are given as workdirs (paths), analysis.Run objects or metrics DataFrames; a list
of them, or a {label: run} dict to name them in the legend. Only metrics.jsonl is read,
so plotting runs loads no params.
"""
import math
import os

import numpy as np
import pandas as pd
from matplotlib import pyplot as plt

from prelm_jax import errors
from prelm_jax import metrics as metrics_lib

# Logged with the train metrics but not what a learning curve compares.
BOOKKEEPING = ("learning_rate", "grad_norm", "param_norm", "update_norm",
               "skipped_steps") + metrics_lib.TIMING_KEYS
_COLUMNS = 3  # subplots per row


def _table(run):
  if isinstance(run, pd.DataFrame):
    return run
  if hasattr(run, "metrics"):  # an analysis.Run
    return run.metrics
  return metrics_lib.read_table(os.fspath(run))


def _label(run, i):
  if isinstance(run, pd.DataFrame):
    return f"run {i}"
  return os.path.basename(os.path.normpath(getattr(run, "workdir", None) or os.fspath(run)))


def _tables(runs):
  """[(label, metrics DataFrame)] of one run, a list of runs or a {label: run} dict."""
  if isinstance(runs, dict):
    return [(str(label), _table(run)) for label, run in runs.items()]
  if isinstance(runs, (list, tuple)):
    return [(_label(run, i), _table(run)) for i, run in enumerate(runs)]
  return [(_label(runs, 0), _table(runs))]


def _metric_names(tables, split):
  """The metrics logged in `split` by any of the runs, loss first, bookkeeping left out."""
  names = []
  for _, table in tables:
    if "split" not in table:
      continue
    rows = table[table["split"] == split]
    for name in rows.columns:
      if (name not in ("step", "split", *BOOKKEEPING) and name not in names
          and rows[name].notna().any()):
        names.append(name)
  return sorted(names, key=lambda n: n != "loss")  # stable: otherwise as logged


def _split(table, split, metric):
  """(steps, values) of `metric` in the records of `split`, by step."""
  if "split" not in table or metric not in table:
    return np.array([]), np.array([])
  rows = table[(table["split"] == split) & table[metric].notna()].sort_values("step")
  return rows["step"].to_numpy(), rows[metric].to_numpy(dtype=float)


def _grid(count, cell=(4.0, 3.0)):
  """A figure with `count` axes in rows of _COLUMNS (the unused cells removed)."""
  columns = min(count, _COLUMNS)
  rows = math.ceil(count / columns)
  fig, axes = plt.subplots(rows, columns, figsize=(cell[0] * columns, cell[1] * rows),
                           squeeze=False)
  for ax in axes.flat[count:]:
    fig.delaxes(ax)
  return fig, list(axes.flat[:count])


def _finish(fig, save):
  """Saves `fig` as a PNG if asked; takes it out of pyplot's list of open figures, so a
  notebook shows it once (as the value returned) and a loop of plots frees its memory."""
  fig.tight_layout()
  if save is not None:
    folder = os.path.dirname(os.fspath(save))
    if folder:
      os.makedirs(folder, exist_ok=True)
    fig.savefig(save, format="png", dpi=100)
  plt.close(fig)
  return fig


def learning_curves(runs, metrics=None, *, smoothing=0.6, save=None):
  """Train and eval curves of one or several runs, one subplot per metric.

  Each run draws its train curve twice, as logged (faint) and smoothed (an exponential
  moving average, as TensorBoard's slider), and its evaluations as points on a line.

  Args:
    runs: a run (workdir, analysis.Run or metrics DataFrame), a list of them, or a
      {label: run} dict.
    metrics: the metric names to plot; None: every metric the runs evaluated (loss
      first), or, before any evaluation, every train metric but the bookkeeping.
    smoothing: the moving average's weight of the past, in [0, 1); 0 draws the
      train curve once, as logged.
    save: a path to write the figure to as a PNG.

  Returns:
    The matplotlib Figure.
  """
  if not 0 <= smoothing < 1:
    raise errors.PrelmError(f"smoothing={smoothing}: pass a weight in [0, 1), e.g. 0.6")
  tables = _tables(runs)
  names = list(metrics or _metric_names(tables, "eval") or _metric_names(tables, "train"))
  if not names:
    raise errors.PrelmError("no metrics to plot: the runs' metrics.jsonl files have no "
                            "records yet")
  fig, axes = _grid(len(names))
  colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
  for ax, name in zip(axes, names):
    for i, (label, table) in enumerate(tables):
      color = colors[i % len(colors)]
      prefix = f"{label} " if len(tables) > 1 else ""
      steps, values = _split(table, "train", name)
      if len(steps):
        faint = dict(alpha=0.3) if smoothing else dict(label=f"{prefix}train")
        ax.plot(steps, values, color=color, linewidth=1, **faint)
        if smoothing:
          smooth = pd.Series(values).ewm(alpha=1 - smoothing).mean().to_numpy()
          ax.plot(steps, smooth, color=color, linewidth=1.5, label=f"{prefix}train")
      steps, values = _split(table, "eval", name)
      if len(steps):
        ax.plot(steps, values, "o--", color=color, markersize=4, label=f"{prefix}eval")
    ax.set_title(name)
    ax.set_xlabel("step")
    ax.grid(alpha=0.3)
  axes[0].legend(fontsize="small")
  return _finish(fig, save)


def attention_grid(maps, tokens, *, layers=None, heads=None, save=None):
  """Attention heat-maps: one row per layer, one column per head.

  Args:
    maps: [layers, heads, T, T] attention probabilities (analysis.Run.attention_maps),
      row q the query token's weights over the key tokens.
    tokens: the T tokens, shown on the axes (queries down, keys across).
    layers, heads: indices to show; None: all.
    save: a path to write the figure to as a PNG.

  Returns:
    The matplotlib Figure (layers x heads axes).
  """
  maps = np.asarray(maps)
  if maps.ndim != 4 or maps.shape[2:] != (len(tokens), len(tokens)):
    raise errors.PrelmError(f"maps of shape {maps.shape} and {len(tokens)} tokens: pass "
                            "what Run.attention_maps returns, [layers, heads, T, T] and T "
                            "tokens")
  layers = list(range(maps.shape[0]) if layers is None else layers)
  heads = list(range(maps.shape[1]) if heads is None else heads)
  cell = max(2.5, 0.22 * len(tokens))
  fig, axes = plt.subplots(len(layers), len(heads), squeeze=False,
                           figsize=(cell * len(heads) + 1, cell * len(layers) + 0.5))
  ticks = np.arange(len(tokens))
  # One colour scale for the whole grid, so that heads and layers compare.
  top = float(maps[np.ix_(layers, heads)].max())
  for r, layer in enumerate(layers):
    for c, head in enumerate(heads):
      ax = axes[r, c]
      ax.imshow(maps[layer, head], cmap="Blues", vmin=0.0, vmax=top)
      ax.set_title(f"layer {layer} head {head}", fontsize="small")
      ax.set_xticks(ticks, tokens if r == len(layers) - 1 else [], rotation=90,
                    fontsize="x-small")
      ax.set_yticks(ticks, tokens if c == 0 else [], fontsize="x-small")
  fig.suptitle(f"attention of each query (row) over the keys (columns): white 0, dark "
               f"blue {top:.2f}", fontsize="small")
  return _finish(fig, save)


def compare_runs(runs, metrics=None, *, split="eval", save=None):
  """Bar charts of the runs' final values: one subplot per metric, one bar per run.

  Args:
    runs: a list of runs (workdirs, analysis.Run or metrics DataFrames), or a
      {label: run} dict.
    metrics: the metric names; None: every metric the runs logged in `split`.
    split: whose last record holds a run's final values: eval, test or train.
    save: a path to write the figure to as a PNG.

  Returns:
    The matplotlib Figure.
  """
  tables = _tables(runs)
  names = list(metrics or _metric_names(tables, split))
  if not names:
    raise errors.PrelmError(f"no {split} metrics to compare: the runs have no {split} "
                            "records yet")
  fig, axes = _grid(len(names), cell=(max(3.0, 0.8 * len(tables) + 1), 3.0))
  colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
  labels = [label for label, _ in tables]
  for ax, name in zip(axes, names):
    finals = []
    for _, table in tables:
      _, values = _split(table, split, name)
      finals.append(values[-1] if len(values) else np.nan)  # NaN: no bar
    bars = ax.bar(range(len(tables)), finals,
                  color=[colors[i % len(colors)] for i in range(len(tables))])
    ax.bar_label(bars, fmt="%.4g", fontsize="x-small")
    ax.set_xticks(range(len(tables)), labels, rotation=30, ha="right", fontsize="small")
    ax.set_title(f"{name} ({split})")
  return _finish(fig, save)
