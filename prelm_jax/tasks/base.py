"""The Task interface: everything about an objective that the loop must not know.

A task is built from the run's config and supplies, for the generic machinery:
  build_model(vocab_size)        the shared encoder plus its head(s)
  batch_spec()                   {name: (shape without the batch axis, dtype)}: the one
                                 description of a batch that data, init, `prelm plan`
                                 and tests all read
  model_inputs(batch)            the positional arguments of model.apply
  denominators(batch)            the whole step's weights (micro-batches divide by them)
  loss_and_sums(...)             (loss to optimise, metric sums) as losses.py's
                                 (sum, weight) convention
  summarize(sums)                sums -> the logged metrics (task part, incl. "loss")
  prepare_data(wd)               the inputs read and checked, nothing written
  pipelines(prepared, ...)       a random-access train source by step, named eval sets
  progress_metrics, best_metric  what the progress line shows; what picks a checkpoint
  summary_lines(result)          what `prelm train` prints at the end
  analytic_flops(num_params)     for `prelm plan`
"""
import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np


@dataclasses.dataclass
class PreparedData:
  """What a task read before the workdir exists (see train.load_data)."""
  tokenizer: Any
  vocab_is_new: bool  # a new vocabulary, to be written with the workdir
  inputs: Any         # task-specific: texts, records, ...
  files: dict = dataclasses.field(default_factory=dict)  # name -> text, for the workdir


@dataclasses.dataclass
class Pipelines:
  train: Any   # .iterate(start_step) -> host batches of this process's rows
  eval_sets: dict  # name -> list of host batches (every process the same count)


class Task:
  """Base class; see the module docstring for what each method supplies."""

  name = None
  progress_metrics = ("loss",)
  best_metric = ("loss", "min")
  keeps_best = False  # keep the params of the best evaluation in <workdir>/best

  def __init__(self, config):
    self.config = config

  def dummy_batch(self, rows=1):
    """Zeros shaped like a batch of `rows` rows (for init and abstract shapes)."""
    return {k: jnp.zeros((rows,) + shape, dtype)
            for k, (shape, dtype) in self.batch_spec().items()}

  def abstract_batch(self, batch_sharding):
    """ShapeDtypeStructs of one global batch (config.train.batch_size rows)."""
    rows = self.config.train.batch_size
    return {k: jax.ShapeDtypeStruct((rows,) + shape, np.dtype(dtype), sharding=batch_sharding)
            for k, (shape, dtype) in self.batch_spec().items()}

  def build_model(self, vocab_size):
    raise NotImplementedError

  def batch_spec(self):
    raise NotImplementedError

  def model_inputs(self, batch):
    raise NotImplementedError

  def denominators(self, batch):
    raise NotImplementedError

  def loss_and_sums(self, model, params, batch, *, deterministic, rngs=None,
                    denominators=None):
    raise NotImplementedError

  def summarize(self, sums):
    raise NotImplementedError

  def prepare_data(self, wd):
    raise NotImplementedError

  def pipelines(self, prepared, *, process_index, process_count):
    raise NotImplementedError

  def attach_run(self, workdir):
    """Reads what a finished run keeps beside its checkpoints (e.g. a label list)."""

  def num_steps(self, prepared):
    """(steps, steps per epoch) when the budget is in epochs; None: train.num_steps."""
    return None

  def eval_outputs(self, model, params, batch):
    """(metric sums, per-example predictions or None) of an eval batch."""
    return self.loss_and_sums(model, params, batch, deterministic=True)[1], None

  def eval_metrics(self, summary, predictions, split="eval"):
    """The summary of eval set `split` plus metrics that need every prediction
    (fine-tuning)."""
    return summary

  def write_predictions(self, path, predictions, dev):
    """Writes the dev predictions for a person to read (fine-tuning)."""

  def summary_lines(self, result):
    return []

  def analytic_flops(self, num_params):
    raise NotImplementedError
