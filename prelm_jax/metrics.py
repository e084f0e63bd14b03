"""Metric outputs of a run: metrics.jsonl (one JSON object a line) and TensorBoard events.

Only process 0 writes; the other processes get a writer that does nothing.
"""
import json
import os

import jax
import tensorboardX

from prelm_jax import workdir as workdir_lib


class MetricsWriter:
  """Appends `{"step", "split", <metrics>}` to metrics.jsonl and mirrors it to TensorBoard."""

  def __init__(self, workdir, *, enabled=None):
    self.enabled = jax.process_index() == 0 if enabled is None else enabled
    self.workdir = workdir
    self.jsonl_path = os.path.join(workdir, workdir_lib.METRICS_FILE)
    self.tensorboard_dir = os.path.join(workdir, workdir_lib.TENSORBOARD_DIR)
    self._tb = None

  def start_at(self, step, *, drop_eval_at_step=False):
    """Opens the outputs for a run that starts (or resumed) at `step`.

    Records a previous attempt wrote past `step` are dropped from metrics.jsonl (see
    drop_records_after) and hidden in TensorBoard (its purge_step), since the run
    writes those steps again.
    """
    if not self.enabled:
      return
    drop_records_after(self.workdir, step, drop_eval_at_step=drop_eval_at_step)
    # The suffix keeps two attempts started within one second (the default file name
    # has the time in seconds) from writing to the same event file.
    self._tb = tensorboardX.SummaryWriter(self.tensorboard_dir, purge_step=step + 1,
                                          filename_suffix=f".{os.getpid()}.from{step}")

  def write(self, step, split, metrics):
    if not self.enabled:
      return
    if self._tb is None:
      self._tb = tensorboardX.SummaryWriter(self.tensorboard_dir)
    record = {"step": int(step), "split": split, **{k: float(v) for k, v in metrics.items()}}
    with open(self.jsonl_path, "a") as f:
      f.write(json.dumps(record) + "\n")
    for name, value in metrics.items():
      self._tb.add_scalar(f"{split}/{name}", float(value), int(step))
    self._tb.flush()

  def close(self):
    if self._tb is not None:
      self._tb.close()


# How fast, not what was learned: differ between runs that trained identically.
TIMING_KEYS = ("steps_per_sec", "tokens_per_sec", "padded_tokens_per_sec",
               "input_wait_fraction")


def untimed(record):
  """A metrics record without its TIMING_KEYS (to compare two runs' training)."""
  return {k: v for k, v in record.items() if k not in TIMING_KEYS}


def drop_records_after(workdir, step, *, drop_eval_at_step=False):
  """Rewrites metrics.jsonl without the records a resumed run will write again.

  A run killed after logging step s but before its checkpoint at s was complete
  resumes from an earlier step r and logs r+1.. again; keeping both would duplicate
  them. Called only after the restore succeeded, so nothing is lost if it fails. A torn
  last line (killed mid-write) is dropped too.

  Args:
    workdir: the run directory.
    step: the restored step; records with a larger step go.
    drop_eval_at_step: also drop eval and test records at `step` (the final
      evaluation, which a run restored at its last step repeats).
  """
  path = os.path.join(workdir, workdir_lib.METRICS_FILE)
  if not os.path.exists(path):
    return
  kept = []
  with open(path) as f:
    for line in f:
      try:
        record = json.loads(line)
      except json.JSONDecodeError:
        continue
      if record["step"] > step or (drop_eval_at_step and record["step"] == step
                                   and record["split"] != "train"):
        continue
      kept.append(line if line.endswith("\n") else line + "\n")
  tmp = f"{path}.tmp"
  with open(tmp, "w") as f:
    f.writelines(kept)
  os.replace(tmp, path)


def read_records(workdir):
  """The records of <workdir>/metrics.jsonl in the order they were written ([] without
  one). A torn last line (a run killed mid-write, or one still writing) is left out."""
  path = os.path.join(workdir, workdir_lib.METRICS_FILE)
  records = []
  if os.path.exists(path):
    with open(path) as f:
      for line in f:
        try:
          records.append(json.loads(line))
        except json.JSONDecodeError:
          continue
  return records


def read_table(workdir):
  """metrics.jsonl as a pandas DataFrame: one row a record, columns step, split and
  the metrics (NaN where a record has no such metric); see read_records."""
  # Imported here: notebooks read tables, training never does and starts faster without.
  import pandas as pd  # pylint: disable=g-import-not-at-top
  records = read_records(workdir)
  return pd.DataFrame.from_records(records, columns=None if records else ["step", "split"])
