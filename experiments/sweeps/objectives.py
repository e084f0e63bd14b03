"""Pre-training objectives on bert_tiny_books: MLM alone, MLM + next-sentence prediction
(BERT), MLM + sentence-order prediction (ALBERT), MLM with whole-word masking.

  prelm sweep objectives --root runs/objectives
"""


def get_sweep():
  return dict(base="bert_tiny_books",
              cases={"mlm": {"data.sentence_objective": "none",
                             "data.whole_word_masking": False},
                     "mlm_nsp": {"data.sentence_objective": "nsp",
                                 "data.whole_word_masking": False},
                     "mlm_sop": {"data.sentence_objective": "sop",
                                 "data.whole_word_masking": False},
                     "mlm_wwm": {"data.sentence_objective": "none",
                                 "data.whole_word_masking": True}},
              seeds=[0])
