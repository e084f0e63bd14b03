"""Self-attention vs a bidirectional LSTM encoder: bert_tiny_books' pre-training with
each encoder, three seeds each (6 runs, ~20 minutes each on 2 CPU cores).

  prelm sweep attention_vs_lstm --root runs/attention_vs_lstm --parallel 2
  prelm report runs/attention_vs_lstm
"""


def get_sweep():
  return dict(base="bert_tiny_books",
              grid={"model.encoder": ["transformer", "lstm"]},
              seeds=[0, 1, 2])
