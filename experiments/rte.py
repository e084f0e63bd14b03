"""RTE (GLUE): sentence-pair entailment, [CLS] A [SEP] B [SEP]; accuracy.

  prelm train --config rte --workdir runs/rte --config.init_from=runs/bert_mini_books \
      --config.data.train_path=../shared/data/rte/train.tsv \
      --config.data.dev_path=../shared/data/rte/dev.tsv

Or from TFDS (same feature names): --config.data.train_path=tfds:glue/rte:train
--config.data.dev_path=tfds:glue/rte:validation [--config.data.tfds_data_dir=DIR].
"""
from experiments import _finetune


def get_config(arg=None):
  del arg
  return _finetune.get_config("classify", text_columns=("sentence1", "sentence2"),
                              sentence_pair=True,
                              label_column="label")
