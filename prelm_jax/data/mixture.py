"""Mixtures (config.data.mixture): several corpora, each example drawn from one of them
in proportion to its weight, deterministically.

  --config.data.mixture='wikipedia/20230601.en:0.8,bookcorpus:0.2'

Each source is config.data with its dataset replaced (so one text_files source, with
config.data.paths), prepared on its own. The weights become a fixed pattern of PERIOD
slots (largest remainder, slots spread evenly), so global example g comes from source
pattern[g % PERIOD]: the proportions hold within 1/PERIOD over any whole number of
periods, and the k-th example of a source is found without counting the earlier ones
(random access, exact resume). Within a source, examples walk its own epochs.
"""
import numpy as np

from prelm_jax import errors

PERIOD = 1000


def sources(data_cfg):
  """[(source's config.data, weight)]: the mixture's, or the one dataset's with 1.0."""
  spec = (data_cfg.get("mixture", "") or "").strip()
  if not spec:
    return [(data_cfg, 1.0)]
  out = []
  for part in spec.split(","):
    name, sep, weight = part.strip().rpartition(":")
    try:
      value = float(weight)
    except ValueError:
      value = None
    if not sep or not name or value is None or not np.isfinite(value) or value <= 0:
      raise errors.ConfigError(
          f"config.data.mixture={spec!r}: {part.strip()!r} is not DATASET:WEIGHT with a "
          "weight > 0; write e.g. --config.data.mixture='pydocs:1,text_files:3'")
    source = data_cfg.copy_and_resolve_references()
    source.dataset, source.mixture = name, ""
    out.append((source, value))
  names = [cfg.dataset for cfg, _ in out]
  if len(set(names)) != len(names):
    raise errors.ConfigError(f"config.data.mixture={spec!r} names a dataset twice; give "
                             "each dataset once, with the sum of its weights")
  return out


def pattern(weights, period=PERIOD):
  """Source index of each of `period` slots: counts by largest remainder, each source's
  slots spread evenly over the period (so short runs are mixed too)."""
  w = np.asarray(weights, np.float64)
  exact = w / w.sum() * period
  counts = np.floor(exact).astype(np.int64)
  counts[np.argsort(-(exact - counts), kind="stable")[:period - counts.sum()]] += 1
  keys = np.concatenate([(np.arange(c) + 0.5) / c for c in counts if c])
  owners = np.concatenate([np.full(c, s) for s, c in enumerate(counts) if c])
  return owners[np.argsort(keys, kind="stable")]


class Schedule:
  """Global example g -> (source, that source's example number k)."""

  def __init__(self, weights, period=PERIOD):
    self.slots = pattern(weights, period)
    self.period = period
    self.per_period = np.bincount(self.slots, minlength=len(weights))
    rank = np.zeros(period, np.int64)
    for s in range(len(weights)):
      at = self.slots == s
      rank[at] = np.arange(at.sum())
    self.rank = rank

  def locate(self, g):
    g = np.asarray(g, np.int64)
    slot = g % self.period
    source = self.slots[slot]
    return source, (g // self.period) * self.per_period[source] + self.rank[slot]

  def proportions(self, num_examples):
    """The fraction of the first num_examples examples drawn from each source."""
    full, rest = divmod(num_examples, self.period)
    counts = full * self.per_period + np.bincount(self.slots[:rest],
                                                  minlength=len(self.per_period))
    return counts / max(num_examples, 1)
