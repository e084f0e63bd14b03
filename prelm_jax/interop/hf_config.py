"""HF BertConfig (config.json; Google's bert_config.json has the same keys) <-> prelm
config keys, and what has no counterpart on the other side."""
from prelm_jax.interop import InteropError

# HF key -> prelm key. Dropout rates come along: they describe how the model was trained.
TO_PRELM = {
    "num_hidden_layers": "model.num_layers",
    "hidden_size": "model.hidden_size",
    "num_attention_heads": "model.num_heads",
    "intermediate_size": "model.mlp_dim",
    "max_position_embeddings": "model.max_position_embeddings",
    "type_vocab_size": "model.type_vocab_size",
    "layer_norm_eps": "model.layer_norm_eps",
    "initializer_range": "model.initializer_range",
    "hidden_dropout_prob": "model.dropout_rate",
    "attention_probs_dropout_prob": "model.attention_dropout_rate",
    "vocab_size": "data.vocab_size",
}
# transformers' names for GELU's exact (erf) form, the only activation prelm computes.
EXACT_GELU = ("gelu", "gelu_python")
REQUIRED = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
            "intermediate_size")
# transformers' BertConfig defaults, for the keys a config.json may leave out (Google's
# bert_config.json has no layer_norm_eps: its modeling.py uses 1e-12).
DEFAULTS = {"max_position_embeddings": 512, "type_vocab_size": 2, "layer_norm_eps": 1e-12,
            "initializer_range": 0.02, "hidden_dropout_prob": 0.1,
            "attention_probs_dropout_prob": 0.1, "hidden_act": "gelu"}


def check_is_bert(hf_config, path):
  """Refuses a config.json of another model family, naming it."""
  model_type = hf_config.get("model_type", "bert")
  architectures = hf_config.get("architectures") or []
  others = [a for a in architectures if not a.startswith("Bert")]
  if model_type != "bert" or others:
    what = f"{model_type!r}" + (f" ({', '.join(architectures)})" if architectures else "")
    raise InteropError(f"{path} describes a {what} model; prelm converts BERT only "
                       "(model_type 'bert': BertModel, BertForPreTraining, BertForMaskedLM)")


def prelm_settings(hf_config, path):
  """{prelm key: value} for a BERT config, e.g. {"model.num_layers": 12, ...}.

  Raises:
    InteropError: a key that is missing, or a model prelm's encoder does not compute
      (an activation other than exact GELU, relative positions, a decoder).
  """
  check_is_bert(hf_config, path)
  missing = [k for k in REQUIRED if k not in hf_config]
  if missing:
    raise InteropError(f"{path} lacks {', '.join(missing)}; is it a BERT config?")
  merged = {**DEFAULTS, **{k: v for k, v in hf_config.items() if v is not None}}
  act = merged["hidden_act"]
  if act not in EXACT_GELU:
    raise InteropError(
        f"{path} has hidden_act {act!r}; prelm's BERT computes the exact (erf) GELU "
        f"(HF's {' or '.join(map(repr, EXACT_GELU))}), so these weights would give other "
        "outputs")
  if merged.get("position_embedding_type", "absolute") != "absolute":
    raise InteropError(
        f"{path} has position_embedding_type {merged['position_embedding_type']!r}; "
        "prelm has learned absolute positions only")
  if merged.get("is_decoder") or merged.get("add_cross_attention"):
    raise InteropError(f"{path} describes a BERT decoder (is_decoder/add_cross_attention); "
                       "prelm's encoder has no causal mask or cross-attention")
  settings = {prelm: _number(hf, merged[hf], path) for hf, prelm in TO_PRELM.items()}
  if settings["model.hidden_size"] % max(settings["model.num_heads"], 1):
    raise InteropError(f"{path}: hidden_size {merged['hidden_size']} is not divisible by "
                       f"num_attention_heads {merged['num_attention_heads']}")
  return settings


def _number(key, value, path):
  """An int for sizes, a float for the rest (a locked prelm config keeps each key's type)."""
  integral = key in REQUIRED or key in ("max_position_embeddings", "type_vocab_size")
  if (isinstance(value, bool) or not isinstance(value, (int, float))
      or (integral and value != int(value))):
    kind = "a whole number" if integral else "a number"
    raise InteropError(f"{path} has {key} {value!r}; it must be {kind}")
  return int(value) if integral else float(value)


def check_exportable(config, path):
  """Refuses a run that HF's BertForPreTraining cannot hold, saying why."""
  model = config["model"]
  task = config.get("task", "pretrain")
  reasons = []
  if task != "pretrain":
    reasons.append(f"it is a {task!r} run (export-hf writes pre-training runs: encoder, "
                   "MLM and NSP heads)")
  if model.get("encoder", "transformer") != "transformer":
    reasons.append(f"its encoder is {model['encoder']!r} (HF BERT is a Transformer)")
  if model.get("pre_ln"):
    reasons.append("it is pre-LN (HF BertLayer normalises after each residual, post-LN)")
  if model.get("alibi"):
    reasons.append("it uses ALiBi (HF BERT's attention has no distance bias)")
  if model.get("mlp_activation", "gelu") != "gelu":
    reasons.append(f"its feed-forward is {model['mlp_activation']!r} (HF BertIntermediate "
                   "is one Dense and an activation, no gate)")
  # SOP's head exports as seq_relationship: its label 0 (in order) is NSP's IsNext.
  if config.get("data", {}).get("sentence_objective", "nsp") == "none":
    reasons.append("it was trained MLM-only (sentence_objective none: no NSP head for "
                   "cls.seq_relationship)")
  if reasons:
    raise InteropError(f"{path} cannot become a HuggingFace BERT: " + "; ".join(reasons))


def hf_config(config, vocab_size, pad_token_id, tied):
  """The config.json of a BertForPreTraining for prelm run `config` (a dict)."""
  out = {"architectures": ["BertForPreTraining"], "model_type": "bert",
         "hidden_act": "gelu", "position_embedding_type": "absolute",
         "pad_token_id": pad_token_id, "tie_word_embeddings": tied,
         # transformers 4.x reads torch_dtype; 5.x takes it as its `dtype`.
         "torch_dtype": "float32"}
  for hf, prelm in TO_PRELM.items():
    section, key = prelm.split(".")
    out[hf] = vocab_size if hf == "vocab_size" else config[section][key]
  return out
