"""What a pre-trained encoder knows before fine-tuning: logistic regression on its
frozen features, against the same architecture with random weights.

For each run: SST-2 sentences (a fixed 2,000-example subset of train, the whole dev
set) go through the encoder; three feature sets (the last layer mean-pooled over real
tokens, the pooled [CLS], the mean input word embedding) are standardised and fed to
scikit-learn's LogisticRegression at C = 0.01, 0.1, 1. Also prints how collapsed the
word embeddings are: the mean cosine between rows of a frequency band of the
vocabulary (about 0 for random rows).

  python benchmarks/linear_probe.py runs/study/pretrain/bert_tiny_books [RUN ...]
"""
import argparse
import pathlib

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from prelm_jax import analysis
from prelm_jax.data import finetune_encode
from prelm_jax.data import finetune_tables
from prelm_jax.model import pretraining

SST2 = pathlib.Path(__file__).resolve().parents[1].parent / "shared" / "data" / "sst2"
BANDS = ((2000, 3000), (8000, 9000), (14000, 15000))


def encode(path, tokenizer, n=None):
  examples = finetune_tables.read_table(path, text_columns=("sentence",),
                                        label_column="label")
  if n:
    keep = sorted(np.random.default_rng(0).permutation(len(examples))[:n])
    examples = [examples[i] for i in keep]
  arrays, _ = finetune_encode.encode_examples(examples, tokenizer, 64,
                                              label_to_id={"0": 0, "1": 1})
  return arrays


def features(model, params, arrays):
  """{name: [N, H]} of the three feature sets."""
  apply = jax.jit(lambda p, *x: model.apply({"params": p}, *x,
                                            method=pretraining.BertForPreTraining.encode))
  keys = ("input_ids", "token_type_ids", "attention_mask")
  mean, pooled = [], []
  for i in range(0, len(arrays["input_ids"]), 256):
    sequence, cls = apply(params, *(jnp.asarray(arrays[k][i:i + 256]) for k in keys))
    mask = arrays["attention_mask"][i:i + 256, :, None]
    mean.append((np.asarray(sequence) * mask).sum(1) / mask.sum(1))
    pooled.append(np.asarray(cls))
  table = np.asarray(params["encoder"]["embeddings"]["word_embeddings"]["embedding"])
  mask = arrays["attention_mask"][..., None]
  bag = (table[arrays["input_ids"]] * mask).sum(1) / mask.sum(1)
  return {"last layer, mean-pooled": np.concatenate(mean),
          "pooled [CLS]": np.concatenate(pooled), "mean word embedding": bag}


def probe(label, model, params, train, dev):
  train_x, dev_x = features(model, params, train), features(model, params, dev)
  for name in train_x:
    scaler = StandardScaler().fit(train_x[name])
    scores = [LogisticRegression(max_iter=3000, C=c).fit(
        scaler.transform(train_x[name]), train["labels"]).score(
            scaler.transform(dev_x[name]), dev["labels"]) for c in (0.01, 0.1, 1.0)]
    print(f"{label:32s} {name:24s} dev accuracy at C=.01/.1/1: "
          + " ".join(f"{s:.3f}" for s in scores))
  table = np.asarray(params["encoder"]["embeddings"]["word_embeddings"]["embedding"])
  unit = table / np.linalg.norm(table, axis=1, keepdims=True)
  for lo, hi in BANDS:
    band = unit[lo:hi]
    n = len(band)
    print(f"{label:32s} word embeddings {lo}-{hi}: mean cosine "
          f"{((band @ band.T).sum() - n) / (n * n - n):.3f}")


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("runs", nargs="+", help="prelm pre-training run directories")
  parser.add_argument("--sst2", default=SST2, type=pathlib.Path)
  args = parser.parse_args()
  for i, run in enumerate(args.runs):
    _, model, params, tokenizer = analysis.load_run(run)
    train = encode(args.sst2 / "train.tsv", tokenizer, 2000)
    dev = encode(args.sst2 / "dev.tsv", tokenizer)
    probe(pathlib.Path(run).name, model, params, train, dev)
    if i == 0:  # the same architecture, random weights
      random = nn.unbox(model.init(jax.random.key(1), *(
          jnp.asarray(train[k][:2]) for k in ("input_ids", "token_type_ids",
                                              "attention_mask")),
          jnp.zeros((2, 1), jnp.int32))["params"])
      probe(f"{pathlib.Path(run).name} (random)", model, random, train, dev)


if __name__ == "__main__":
  main()
