"""STS-B (GLUE): sentence-pair similarity as a regression (MSE); Pearson, Spearman.

  prelm train --config stsb --workdir runs/stsb --config.init_from=runs/bert_mini_books \
      --config.data.train_path=../shared/data/stsb/train.tsv \
      --config.data.dev_path=../shared/data/stsb/dev.tsv

Or from TFDS, whose score feature is `label`: --config.data.label_column=label
--config.data.train_path=tfds:glue/stsb:train
--config.data.dev_path=tfds:glue/stsb:validation.
"""
from experiments import _finetune


def get_config(arg=None):
  del arg
  return _finetune.get_config("classify", text_columns=("sentence1", "sentence2"),
                              sentence_pair=True,
                              label_column="score", regression=True)
