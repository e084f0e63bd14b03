"""Shared by the fine-tuning experiments (not an experiment: the leading _ hides it)."""
from experiments import base


def get_config(task, **data):
  """BERT's fine-tuning recipe: AdamW, 10% warm-up then linear decay, 3 epochs, batch 32.

  The learning rate is for small encoders pre-trained here (BERT-base takes 2e-5..5e-5).
  """
  config = base.get_config()
  config.task = task
  config.data.update(data)
  config.data.max_seq_len = 128
  config.train.update(num_epochs=3.0, batch_size=32, eval_batch_size=64, log_every=20,
                      checkpoint_every=500)
  config.optim.update(learning_rate=1e-4, warmup_fraction=0.1, decay="linear")
  return config
