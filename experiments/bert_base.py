"""BERT-base, Google's size: 12 layers, hidden 768, 12 heads; 110.1M params.

The BERT family (experiments/_bert_family.py): vocabulary 30522, 512 positions,
sequence length 128, batch 256, peak LR 1e-4, 900k steps. Point it at your text:

  prelm plan --config bert_base --mesh data=1,fsdp=8,tensor=1 --device-memory 16GiB
  prelm train --config bert_base --workdir runs/bert_base \
      --config.data.dataset=text_files --config.data.paths='~/corpus/**/*.txt'
"""
from experiments import _bert_family


def get_config(arg=None):
  del arg
  return _bert_family.get_config("base")
