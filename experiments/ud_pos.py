"""Universal Dependencies POS tagging (UPOS of CoNLL-U files, e.g. English GUM); accuracy.

  prelm train --config ud_pos --workdir runs/pos --config.init_from=runs/bert_mini_books \
      --config.data.train_path=../shared/data/ud-english-gum/en_gum-ud-train.conllu \
      --config.data.dev_path=../shared/data/ud-english-gum/en_gum-ud-dev.conllu
"""
from experiments import _finetune


def get_config(arg=None):
  del arg
  return _finetune.get_config("tag", format="conllu", tag_column="upos", tag_scheme="tags")
