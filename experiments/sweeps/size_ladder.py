"""Model size at a fixed step budget: BERT tiny, mini and small (Turc et al. 2019's
compact sizes, model/variants.py) on bert_tiny_books' corpus, vocabulary and schedule.

  prelm sweep size_ladder --root runs/size_ladder
"""
from prelm_jax.model import variants


def get_sweep():
  cases = {name: {f"model.{k}": v for k, v in variants.get(name).items()}
           for name in ("tiny", "mini", "small")}
  return dict(base="bert_tiny_books", cases=cases, seeds=[0])
