"""BERT-tiny (2 layers, hidden 128, 2 heads) on English prose: README's study's encoder.

Same corpus and vocabulary as bert_mini_books; a smaller model trained for more steps,
so that the study's 36 fine-tuning runs fit on 2 CPU cores.

  prelm train --config bert_tiny_books --workdir runs/bert_tiny_books
"""
from experiments import bert_mini_books
from prelm_jax.model import variants


def get_config(arg=None):
  config = bert_mini_books.get_config(arg)
  config.model.update(variants.get("tiny"))
  # ~20 minutes on 2 otherwise idle CPU cores (2.5 steps/s), plus ~1 minute of corpus
  # and vocabulary; 6,000 steps fill the study's 45 minutes (README: not better yet).
  config.train.num_steps = 3000
  config.train.eval_every = 500
  config.train.checkpoint_every = 500
  config.optim.learning_rate = 1e-3     # as bert_tiny_pydocs
  config.optim.warmup_steps = 300
  return config
