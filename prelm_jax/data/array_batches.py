"""Batches from encoded arrays (fine-tuning sets fit in memory), random access by step.

Training: global example g = step * batch_size + row takes row permutation(epoch)[g % N]
with epoch = g // N, the permutation drawn from (seed, epoch): like the pre-training
pipeline, a batch is a pure function of (seed, step, row), so resume is exact and each
process builds only its own rows. Evaluation: every example once, in order, the last
batch padded with copies of the first example whose weights are 0.
"""
import sys

import grain
import numpy as np

from prelm_jax.data import pretrain


def _rows(arrays, index):
  out = {k: v[index] for k, v in arrays.items()}
  out["example_weights"] = np.ones(len(index), np.float32)
  return out


class ArrayBatches:
  """Endless training batches over `arrays` (dict of [N, ...] numpy arrays)."""

  def __init__(self, arrays, *, batch_size, seed, process_index=0, process_count=1):
    self.arrays = arrays
    self.num_examples = len(next(iter(arrays.values())))
    self.batch_size, self.seed = batch_size, seed
    self._rows = pretrain.local_rows(batch_size, process_index, process_count)

  def _order(self, epoch):
    return np.random.default_rng([self.seed, epoch]).permutation(self.num_examples)

  def batch(self, step):
    lo, hi = self._rows
    g = step * self.batch_size + np.arange(lo, hi)
    epochs = g // self.num_examples
    index = np.empty(len(g), np.int64)
    for epoch in np.unique(epochs):  # a batch spans at most two epochs
      at = epochs == epoch
      index[at] = self._order(int(epoch))[g[at] % self.num_examples]
    return _rows(self.arrays, index)

  def iterate(self, start_step):
    steps = grain.MapDataset.range(start_step, sys.maxsize).map(self.batch)
    return iter(steps.to_iter_dataset(
        grain.ReadOptions(num_threads=1, prefetch_buffer_size=4)))


def eval_batches(arrays, *, batch_size, process_index=0, process_count=1):
  """This process's rows of each global eval batch; padding rows have zero weights.

  Every key ending in "weights" (and the added example_weights) is 0 on padding rows,
  so losses and metrics skip them.
  """
  n = len(next(iter(arrays.values())))
  lo, hi = pretrain.local_rows(batch_size, process_index, process_count)
  batches = []
  for start in range(0, n, batch_size):
    g = np.arange(start + lo, start + hi)
    real = g < n
    batch = _rows(arrays, np.where(real, g, 0))
    for key in batch:
      if key.endswith("weights"):
        batch[key] = batch[key] * real.reshape((-1,) + (1,) * (batch[key].ndim - 1))
    batches.append(batch)
  return batches
