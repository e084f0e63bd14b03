"""SST-2 sentiment (GLUE): single-sentence classification, accuracy.

  prelm train --config sst2 --workdir runs/sst2 --config.init_from=runs/bert_mini_books \
      --config.data.train_path=../shared/data/sst2/train.tsv \
      --config.data.dev_path=../shared/data/sst2/dev.tsv

Or from TFDS, prepared in DIR ("" or no flag: ~/tensorflow_datasets); the labels then
read negative/positive:
      --config.data.tfds_data_dir=DIR \
      --config.data.train_path=tfds:glue/sst2:train \
      --config.data.dev_path=tfds:glue/sst2:validation
"""
from experiments import _finetune


def get_config(arg=None):
  del arg
  return _finetune.get_config("classify", text_columns=("sentence",), label_column="label")
