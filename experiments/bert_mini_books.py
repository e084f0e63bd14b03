"""BERT-mini (4 layers, hidden 256, 4 heads) pre-trained on English prose, ~35 CPU minutes.

29 Project Gutenberg books and WikiText-2's articles (14 MB + 1 MB, shared/data beside
this repository) through the text_files dataset: MLM + NSP at sequence length 128, a 16k
WordPiece vocabulary.

  prelm train --config experiments/bert_mini_books.py --workdir runs/bert_mini_books

Other text: --config.data.paths='~/my_books/*.txt,~/more/**/*.txt.gz'. WikiText-2's raw
files are its validation and test splits: drop them from data.paths if you will measure
perplexity on WikiText-2.
"""
import pathlib

from experiments import base
from prelm_jax.model import variants

# <repo>/../shared/data: where the project's shared data sits next to each checkout.
SHARED_DATA = pathlib.Path(__file__).resolve().parents[1].parent / "shared" / "data"


def get_config(arg=None):
  config = base.get_config(arg)
  config.model.update(variants.get("mini"))
  config.model.max_position_embeddings = 128
  config.model.attention_dropout_rate = 0.0   # as bert_tiny_pydocs: ~10% of a CPU step

  config.data.dataset = "text_files"
  config.data.paths = ",".join([str(SHARED_DATA / "gutenberg" / "*.txt"),
                                str(SHARED_DATA / "wikitext-2-raw" / "wiki.*.raw")])
  config.data.documents = "blank_lines"        # paragraphs -> ~64-sentence documents
  config.data.vocab_size = 16000

  # ~35 minutes on 2 CPU cores: 0.30 steps/s measured (7.4M params), plus ~1 minute to
  # prepare the corpus (~3 s), train the vocabulary and compile. 600 x 64 sequences of
  # <= 128 tokens ~ 1.5 passes over the training split's 3.0M WordPiece tokens.
  config.train.num_steps = 600
  config.train.batch_size = 64
  config.train.log_every = 50
  config.train.eval_every = 200
  config.train.checkpoint_every = 200
  config.train.fill_mask_prompts = ("she opened the [MASK] and looked out.",
                                    "the old man walked slowly down the [MASK].")
  config.optim.learning_rate = 5e-4     # Turc et al.'s compact BERTs: 1e-4 .. 1e-3
  config.optim.warmup_steps = 60        # 10% of the steps
  return config
