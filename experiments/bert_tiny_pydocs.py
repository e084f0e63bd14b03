"""The default experiment: BERT-tiny (2 layers, hidden 128, 2 heads) on the embedded
pydocs corpus, MLM + NSP at sequence length 128; a few minutes on 2 CPU cores.

  prelm train --config experiments/bert_tiny_pydocs.py --workdir runs/bert_tiny_pydocs
"""
from experiments import base
from prelm_jax.model import variants


def get_config(arg=None):
  config = base.get_config(arg)
  config.model.update(variants.get("tiny"))
  config.model.max_position_embeddings = 128
  config.data.vocab_size = 8000

  config.train.num_steps = 1000
  config.train.batch_size = 64
  config.train.log_every = 50
  config.train.eval_every = 250
  config.train.checkpoint_every = 250
  config.optim.learning_rate = 1e-3     # small models take a larger LR than BERT-base's 1e-4
  config.optim.warmup_steps = 100
  return config
