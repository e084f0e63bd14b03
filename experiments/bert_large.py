"""BERT-large, Google's size: 24 layers, hidden 1024, 16 heads; 336.2M params.

The BERT family (experiments/_bert_family.py): vocabulary 30522, 512 positions, phase 1
of the paper's recipe (sequence length 128, batch 256, peak LR 1e-4, 900k steps). Sized
for a pod or a GPU cluster; check a mesh first with `prelm plan`:

  prelm plan --config bert_large --mesh data=1,fsdp=32,tensor=1 --device-memory 16GiB
  prelm train --config bert_large --workdir runs/bert_large --config.mesh.fsdp=-1
"""
from experiments import _bert_family


def get_config(arg=None):
  del arg
  config = _bert_family.get_config("large")
  # One compiled layer instead of 24: compiles ~10x faster; params get a layers axis.
  config.model.scan_layers = True
  return config
