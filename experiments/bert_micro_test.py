"""A micro BERT for tests of launchers and multi-process runs: seconds per run, no meaning.

Same sizes as tests/test_train.py's tiny_config. Set the data dir on the command line:

  launch/local.sh --processes 2 --devices-per-process 4 -- train \
      --config bert_micro_test --workdir /tmp/micro --config.data.tfds_data_dir=/tmp/tfds
"""
from experiments import base


def get_config(arg=None):
  config = base.get_config(arg)
  config.model.update(num_layers=1, hidden_size=32, num_heads=2, mlp_dim=64,
                      max_position_embeddings=64)
  config.data.update(vocab_size=600, max_seq_len=64, max_predictions_per_seq=10)
  # Global batch 16: divisible by 8 devices and by 1, 2, 4 or 8 processes.
  config.train.update(num_steps=4, batch_size=16, eval_batch_size=16, log_every=1,
                      eval_every=4, checkpoint_every=4)
  config.train.fill_mask_prompts = ("return the [MASK] of the function.",)
  config.optim.update(learning_rate=3e-3, warmup_steps=2)
  return config
