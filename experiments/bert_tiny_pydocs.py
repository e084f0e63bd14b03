"""The default experiment: BERT-tiny on the embedded pydocs corpus, minutes on 2 CPUs.

BERT-tiny (2 layers, hidden 128, 2 heads), MLM + NSP at sequence length 128.

  prelm train --config experiments/bert_tiny_pydocs.py --workdir runs/bert_tiny_pydocs
"""
from experiments import base
from prelm_jax.model import variants


def get_config(arg=None):
  config = base.get_config(arg)
  config.model.update(variants.get("tiny"))
  config.model.max_position_embeddings = 128
  config.data.vocab_size = 8000
  # Attention dropout costs ~10% of a CPU step for no gain at this size and budget.
  config.model.attention_dropout_rate = 0.0

  # ~6 minutes on 2 CPU cores at ~2.2 steps/s; held-out MLM ~0.2, NSP ~0.8.
  config.train.num_steps = 800
  config.train.batch_size = 64
  config.train.log_every = 50
  config.train.eval_every = 200
  config.train.checkpoint_every = 200
  config.optim.learning_rate = 1e-3     # small models take a larger LR than BERT-base's 1e-4
  config.optim.warmup_steps = 100
  return config
