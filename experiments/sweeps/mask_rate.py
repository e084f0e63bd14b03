"""Masking rate: 15% (BERT) vs 30% and 40% (Wettig et al. 2023, "Should you mask 15%?")
on bert_tiny_books. max_predictions_per_seq grows with the rate so that no masked token
is dropped: max_seq_len 128 x rate, rounded up (19.2 -> 20, 38.4 -> 40, 51.2 -> 52).

  prelm sweep mask_rate --root runs/mask_rate
"""


def get_sweep():
  return dict(base="bert_tiny_books",
              zip={"data.mask_prob": [0.15, 0.3, 0.4],
                   "data.max_predictions_per_seq": [20, 40, 52]},
              seeds=[0])
