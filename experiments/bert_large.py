"""BERT-large (24 layers, hidden 1024, 16 heads; ~335M params with a 30522 vocabulary),
phase 1 of the paper's recipe: sequence length 128, batch 256, peak LR 1e-4. Sized for a
pod or a GPU cluster; check a mesh first with `prelm plan`:

  prelm plan --config bert_large --mesh data=1,fsdp=32,tensor=1 --device-memory 16GiB
  prelm train --config bert_large --workdir runs/bert_large --config.mesh.fsdp=-1
"""
from experiments import base
from prelm_jax.model import variants


def get_config(arg=None):
  config = base.get_config(arg)
  config.model.update(variants.get("large"))
  config.data.vocab_size = 30522
  # One compiled layer instead of 24: compiles ~10x faster; params get a layers axis.
  config.model.scan_layers = True
  config.train.num_steps = 900_000       # the paper's 90% at length 128
  config.train.batch_size = 256
  config.train.eval_batch_size = 256
  config.train.log_every = 100
  config.train.eval_every = 10_000
  config.train.checkpoint_every = 5_000
  config.optim.learning_rate = 1e-4
  config.optim.warmup_steps = 10_000
  return config
