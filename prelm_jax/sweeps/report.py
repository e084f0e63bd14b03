"""`prelm report DIR`: one row per run (done, incomplete, failed or not started) and one
learning-curve PNG per metric, runs that differ only in seed drawn as mean and band."""
import json
import math
import os
import re

from prelm_jax import metrics
from prelm_jax import param_count
from prelm_jax import workdir as workdir_lib
from prelm_jax.sweeps import layout
from prelm_jax.sweeps import spec

# Metrics where higher is better; every other metric (losses, perplexity) is minimised.
_HIGHER_IS_BETTER = re.compile(r"acc|f1|corr|precision|recall|matthews|spearman|pearson")


def find_runs(root):
  """[(name, overrides or None)]: sweep.json's runs, then any other workdir under root."""
  saved = layout.read_sweep_file(root) or {"runs": []}
  runs = [(r["name"], r["overrides"]) for r in saved["runs"]]
  listed = {name for name, _ in runs}
  if os.path.isdir(root):
    for entry in sorted(os.listdir(root)):
      path = os.path.join(root, entry)
      if entry not in listed and os.path.isfile(os.path.join(path, workdir_lib.CONFIG_FILE)):
        runs.append((entry, None))
  if not runs:
    raise spec.SweepError(f"{root} holds no runs (no sweep.json, no run directory with "
                          "config.json); give the --root of a `prelm sweep`")
  return runs


def status_of(root, name):
  run, log = layout.run_dir(root, name), layout.log_path(root, name)
  if os.path.exists(os.path.join(run, workdir_lib.FINAL_METRICS_FILE)):
    return "done"
  tail = open(log, errors="replace").read()[-4000:] if os.path.exists(log) else ""
  if "prelm: error:" in tail or "Traceback" in tail:
    return "failed"
  return "incomplete" if os.path.isdir(run) else "not started"


def params_of(root, name):
  try:
    return param_count.count_run(layout.run_dir(root, name))
  except Exception:  # pylint: disable=broad-except
    return None  # a config this version cannot build: the column stays blank


def row_of(root, name, records):
  """The table's row: status, steps, final and best eval metrics, size and speed."""
  train = [r for r in records if r.get("split") == "train"]
  evals = [r for r in records if r.get("split") == "eval"]
  row = {"run": name, "status": status_of(root, name),
         "steps": max((r["step"] for r in records), default=0),
         "params": params_of(root, name)}
  # Seconds of training: each logged window's steps at its measured rate.
  seconds, last = 0.0, 0
  for r in train:
    if r.get("steps_per_sec"):
      seconds += (r["step"] - last) / r["steps_per_sec"]
    last = r["step"]
  row["train_seconds"] = round(seconds, 1) if seconds else None
  losses = [r["loss"] for r in train if _number(r.get("loss"))]
  row["final_train_loss"] = losses[-1] if losses else None
  # Real tokens (padding not counted); padded_tokens_per_sec counts every position.
  rates = [r["tokens_per_sec"] for r in train if r.get("tokens_per_sec")]
  row["tokens_per_sec"] = round(sum(rates) / len(rates)) if rates else None
  for metric in metric_names(evals):
    values = [r[metric] for r in evals if _number(r.get(metric))]
    if values:
      row[f"final_{metric}"] = values[-1]
      best = max if _HIGHER_IS_BETTER.search(metric) else min
      row[f"best_{metric}"] = best(values)
  return row


def _number(value):
  return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def metric_names(records):
  names = []
  for r in records:
    names += [k for k, v in r.items() if k not in ("step", "split") and _number(v)
              and k not in names]
  return names


def markdown(frame):
  def cell(v):
    if v is None or (isinstance(v, float) and math.isnan(v)):
      return ""
    return f"{v:.4g}" if isinstance(v, float) else str(v)
  lines = ["| " + " | ".join(frame.columns) + " |", "|" + "---|" * len(frame.columns)]
  lines += ["| " + " | ".join(cell(v) for v in row) + " |"
            for row in frame.itertuples(index=False)]
  return "\n".join(lines)


def seed_group(name, overrides):
  """Runs that differ only in seed share this key."""
  if overrides is None:
    return re.sub(r"_?seed-[0-9]+", "", name) or name
  return json.dumps({k: v for k, v in overrides.items() if k != "seed"}, sort_keys=True,
                    default=str)


def draw_curves(root, runs, records_of):
  """DIR/curves_<metric>.png for each eval metric and the training loss; their paths."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  groups = {}
  for name, overrides in runs:
    groups.setdefault(seed_group(name, overrides), []).append(name)
  curves = {}  # file metric name -> (split, record key)
  for name, _ in runs:
    for r in records_of[name]:
      for key in metric_names([r]):
        if r["split"] == "eval":
          curves.setdefault(key, ("eval", key))
        elif key == "loss":
          curves.setdefault("train_loss", ("train", key))
  paths = []
  for metric, (split, key) in curves.items():
    figure, axes = plt.subplots(figsize=(7, 4.5))
    for members in groups.values():
      series = [{r["step"]: r[key] for r in records_of[n]
                 if r.get("split") == split and _number(r.get(key))} for n in members]
      series = [s for s in series if s]
      if not series:
        continue
      label = re.sub(r"_?seed-[0-9]+", "", members[0]) or members[0]
      if len(series) == 1:
        steps = sorted(series[0])
        axes.plot(steps, [series[0][s] for s in steps], label=members[0])
        continue
      steps = sorted(set.intersection(*(set(s) for s in series)))
      values = np.array([[s[t] for t in steps] for s in series])
      line, = axes.plot(steps, values.mean(0), label=f"{label} (mean of {len(series)} seeds)")
      axes.fill_between(steps, values.min(0), values.max(0), alpha=0.2,
                        color=line.get_color())
    axes.set_xlabel("step")
    axes.set_ylabel(f"{split} {key}")
    axes.legend(fontsize="small")
    path = os.path.join(root, f"curves_{spec.safe(metric)}.png")
    figure.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(figure)
    paths.append(path)
  return paths


def write_report(root):
  """Writes DIR/report.csv and the curves; returns the text for the console."""
  import pandas as pd  # pylint: disable=g-import-not-at-top
  runs = find_runs(root)
  records_of = {name: metrics.read_records(layout.run_dir(root, name)) for name, _ in runs}
  frame = pd.DataFrame([row_of(root, name, records_of[name]) for name, _ in runs])
  csv_path = os.path.join(root, layout.REPORT_FILE)
  frame.to_csv(csv_path, index=False)
  paths = draw_curves(root, runs, records_of)
  return "\n".join([markdown(frame), "", f"Table: {csv_path}"]
                   + [f"Curves: {p}" for p in paths])
