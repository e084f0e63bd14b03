"""CoNLL-2003 English NER: BIO tagging (original IOB1 files converted to IOB2); entity F1.

  prelm train --config conll2003_ner --workdir runs/ner \
      --config.init_from=runs/bert_mini_books \
      --config.data.train_path=../shared/data/conll2003/eng.train \
      --config.data.dev_path=../shared/data/conll2003/eng.testa

Or from TFDS: --config.data.train_path=tfds:conll2003:train
--config.data.dev_path=tfds:conll2003:dev; tag_column -1 is then the last feature, ner,
whose tags are IOB2 already (the iob1 conversion leaves them as they are).
"""
from experiments import _finetune


def get_config(arg=None):
  del arg
  return _finetune.get_config("tag", format="conll", tag_column="-1", tag_scheme="iob1")
