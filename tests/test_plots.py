"""plots.py: learning curves, attention grids and run comparisons, drawn headless and
written as PNGs, from metrics.jsonl files (no params loaded)."""
import json

import numpy as np
import pandas as pd
import pytest

from prelm_jax import errors
from prelm_jax import metrics
from prelm_jax import plots

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def write_run(folder, final_accuracy, *, torn=False):
  """A workdir whose metrics.jsonl has train records every step and evals every 4."""
  folder.mkdir()
  records = []
  for step in range(1, 9):
    records.append({"step": step, "split": "train", "loss": 8.0 / step,
                    "mlm_accuracy": step / 10, "learning_rate": 1e-3, "grad_norm": 1.0})
    if step % 4 == 0:
      records.append({"step": step, "split": "eval", "loss": 9.0 / step,
                      "mlm_accuracy": final_accuracy * step / 8, "nsp_accuracy": 0.5})
  text = "".join(json.dumps(r) + "\n" for r in records)
  (folder / "metrics.jsonl").write_text(text + ('{"step": 9, "spl' if torn else ""))
  return folder


def assert_png(path):
  data = path.read_bytes()
  assert len(data) > 1000 and data.startswith(PNG_SIGNATURE)


def test_metrics_table_reads_every_record_and_skips_a_torn_line(tmp_path):
  table = metrics.read_table(write_run(tmp_path / "run", 0.5, torn=True))
  assert len(table) == 10 and list(table.columns[:2]) == ["step", "split"]
  assert table[table.split == "eval"].nsp_accuracy.tolist() == [0.5, 0.5]
  assert table[table.split == "train"].nsp_accuracy.isna().all()
  empty = metrics.read_table(tmp_path)  # no metrics.jsonl (yet)
  assert empty.empty and list(empty.columns) == ["step", "split"]


def test_learning_curves_of_one_and_of_several_runs(tmp_path):
  first = write_run(tmp_path / "first", 0.5)
  fig = plots.learning_curves(first, save=tmp_path / "out" / "one.png")
  # The evaluated metrics, loss first; bookkeeping (learning_rate, grad_norm) left out.
  assert [ax.get_title() for ax in fig.axes] == ["loss", "mlm_accuracy", "nsp_accuracy"]
  # Per run: train as logged, train smoothed, eval; nsp_accuracy is evaluated only.
  assert [len(ax.lines) for ax in fig.axes] == [3, 3, 1]
  smoothed = fig.axes[0].lines[1].get_ydata()
  assert smoothed[0] == 8.0 and smoothed[-1] > 1.0  # an average of the past: above 8/8
  assert_png(tmp_path / "out" / "one.png")

  second = write_run(tmp_path / "second", 0.7)
  fig = plots.learning_curves({"a": first, "b": metrics.read_table(second)}, ["loss"],
                              smoothing=0.0, save=tmp_path / "two.png")
  assert len(fig.axes) == 1 and len(fig.axes[0].lines) == 4  # 2 runs x (train, eval)
  labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
  assert labels == ["a train", "a eval", "b train", "b eval"]
  assert_png(tmp_path / "two.png")
  with pytest.raises(errors.PrelmError, match="no metrics to plot"):
    plots.learning_curves(tmp_path)  # no metrics.jsonl
  with pytest.raises(errors.PrelmError, match="smoothing=1"):
    plots.learning_curves(first, smoothing=1)


def test_attention_grid_has_one_heat_map_per_layer_and_head(tmp_path):
  tokens = ["[CLS]", "the", "list", "[SEP]"]
  maps = np.random.default_rng(0).dirichlet(np.ones(4), size=(2, 3, 4))  # [2, 3, 4, 4]
  fig = plots.attention_grid(maps, tokens, save=tmp_path / "attention.png")
  assert len(fig.axes) == 6
  assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == tokens
  assert [t.get_text() for t in fig.axes[-1].get_xticklabels()] == tokens
  np.testing.assert_array_equal(fig.axes[4].images[0].get_array(), maps[1, 1])
  assert_png(tmp_path / "attention.png")
  assert len(plots.attention_grid(maps, tokens, layers=[1], heads=[0, 2]).axes) == 2
  with pytest.raises(errors.PrelmError, match="4 tokens"):
    plots.attention_grid(maps[..., :3], tokens)


def test_compare_runs_draws_a_bar_per_run_and_metric(tmp_path):
  runs = [write_run(tmp_path / "small", 0.5), write_run(tmp_path / "large", 0.7)]
  fig = plots.compare_runs(runs, save=tmp_path / "compare.png")
  assert [ax.get_title() for ax in fig.axes] == [
      "loss (eval)", "mlm_accuracy (eval)", "nsp_accuracy (eval)"]
  assert all(len(ax.patches) == 2 for ax in fig.axes)
  heights = [p.get_height() for p in fig.axes[1].patches]
  assert heights == pytest.approx([0.5, 0.7])  # each run's last evaluation
  assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["small", "large"]
  assert_png(tmp_path / "compare.png")
  fig = plots.compare_runs({"x": runs[0]}, ["loss"], split="train")
  assert fig.axes[0].patches[0].get_height() == pytest.approx(1.0)
  with pytest.raises(errors.PrelmError, match="no test metrics"):
    plots.compare_runs(runs, split="test")


def test_figures_are_not_left_open_in_pyplot(tmp_path):
  from matplotlib import pyplot as plt  # pylint: disable=g-import-not-at-top
  before = len(plt.get_fignums())
  plots.learning_curves(pd.DataFrame([{"step": 1, "split": "train", "loss": 1.0}]))
  assert len(plt.get_fignums()) == before
