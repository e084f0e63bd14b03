"""The BERT family's sizes against the published parameter counts, and every registered
experiment's model built from shapes alone (jax.eval_shape: nothing is initialised).

Counting: as BertForPreTraining (HuggingFace) counts, which is how the published numbers
come out: embeddings, encoder, pooler, the MLM transform + LayerNorm + output bias and
NSP; the MLM output matrix is the tied word embeddings, counted once. Without the heads
mini would be 11.2M and small 28.8M, not the published 11.3M and 29.1M.
"""
import re

import pytest

from prelm_jax import info_commands
from prelm_jax import param_count
from prelm_jax import registry
from prelm_jax.model import variants

# Devlin et al. 2019 (base 110M, large 340M: a rounding of 336M); Turc et al. 2019's
# compact BERTs as google-research/bert lists them.
PUBLISHED_PARAMS = {"tiny": 4.4e6, "mini": 11.3e6, "small": 29.1e6, "medium": 41.7e6,
                    "base": 110e6, "large": 340e6}
FAMILY = {size: f"bert_{size}" for size in variants.VARIANTS}


def bert_for_pretraining_params(num_layers, hidden_size, mlp_dim, vocab_size=30522,
                                positions=512, segments=2):
  """HuggingFace BertForPreTraining's count, written out (H: hidden, I: MLP width)."""
  h, i = hidden_size, mlp_dim
  embeddings = (vocab_size + positions + segments) * h + 2 * h  # + LayerNorm
  layer = (4 * (h * h + h)          # query, key, value, attention output
           + 2 * h                  # LayerNorm
           + (h * i + i) + (i * h + h)  # MLP
           + 2 * h)                 # LayerNorm
  pooler = h * h + h
  mlm = (h * h + h) + 2 * h + vocab_size  # transform, LayerNorm, output bias
  nsp = 2 * h + 2
  return embeddings + num_layers * layer + pooler + mlm + nsp


def registry_summary(name):
  return info_commands.summary(registry.EXPERIMENTS_DIR / f"{name}.py")


def test_every_size_has_its_experiment():
  assert set(FAMILY.values()) <= set(registry.names())


@pytest.mark.parametrize("size", list(variants.VARIANTS))
def test_family_matches_bert_for_pretraining_and_the_published_count(size):
  config = registry.load(FAMILY[size])
  model = config.model
  assert (model.max_position_embeddings, model.type_vocab_size, config.data.vocab_size,
          config.task) == (512, 2, 30522, "pretrain")
  assert {k: model[k] for k in variants.get(size)} == variants.get(size)

  unpadded = registry.load(FAMILY[size])
  unpadded.model.vocab_pad_multiple = 1
  expected = bert_for_pretraining_params(model.num_layers, model.hidden_size, model.mlp_dim)
  assert param_count.count(unpadded).total == expected

  # As the experiment runs: 30522 rows padded to 30528 (config.model.vocab_pad_multiple).
  count = param_count.count(config)
  assert abs(count.total - PUBLISHED_PARAMS[size]) / PUBLISHED_PARAMS[size] < 0.02, count
  # The count its summary line (`prelm list`) states, to its one decimal.
  stated = re.search(r"([\d.]+)M params", registry_summary(FAMILY[size]))
  assert stated and float(stated.group(1)) == round(count.total / 1e6, 1)


@pytest.mark.parametrize("name", registry.names())
def test_every_experiment_builds_abstractly(name):
  """Fine-tuning experiments read no data here: their head gets config.data.labels'
  outputs, at least 2 (1 for a regression); the encoder is the config's own."""
  config = registry.load(name)
  count = param_count.count(config)
  assert count.encoder > 0 and count.heads > 0, count
  assert registry_summary(name), f"experiments/{name}.py needs a docstring: `prelm list`"
