"""HuggingFace BERT <-> prelm against transformers itself: the same outputs (every layer's
hidden states and attention probabilities included) within 1e-4 in float32, at BERT's
scale and with activations of order 1; a wrong conversion is caught; export and import
round trips are exact; imported runs train, fine-tune and load like prelm's own.

Models are random, of a shape BERT never has (hidden 96, 3 heads, 3 layers, mlp 200),
with every LayerNorm and bias perturbed, so that a swapped axis or a dropped bias shows.
"""
import json
import os
import pathlib
import string
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip(
    "torch", reason="HF interop parity needs torch: pip install 'prelm_jax[hf]'")
transformers = pytest.importorskip(
    "transformers", reason="HF interop parity needs transformers: pip install 'prelm_jax[hf]'")

from prelm_jax import analysis  # noqa: E402
from prelm_jax import registry  # noqa: E402
from prelm_jax import train  # noqa: E402
from prelm_jax.interop import InteropError  # noqa: E402
from prelm_jax.interop import google_tf  # noqa: E402
from prelm_jax.interop import hf_config  # noqa: E402
from prelm_jax.interop import hf_export  # noqa: E402
from prelm_jax.interop import hf_import  # noqa: E402
from prelm_jax.interop import hf_names  # noqa: E402
from prelm_jax.model import intermediates  # noqa: E402
from prelm_jax.model import pretraining  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[1]
VOCAB_SIZE = 1200
LAYERS, HIDDEN, HEADS, MLP = 3, 96, 3, 200
# Not BERT's 1e-12: an importer that dropped the epsilon would show.
LAYER_NORM_EPS = 1e-5
TOLERANCE = 1e-4


def vocab_tokens(size=VOCAB_SIZE):
  """Google's layout ([PAD]=0, [unused0..98], [UNK]=100, [CLS], [SEP], [MASK]), every
  character alone and as ##continuation, then filler words: any text tokenises into
  something other than [UNK]."""
  chars = string.ascii_lowercase + string.digits + string.punctuation
  tokens = (["[PAD]"] + [f"[unused{i}]" for i in range(99)]
            + ["[UNK]", "[CLS]", "[SEP]", "[MASK]"] + list(chars))
  tokens += ["##" + c for c in chars]
  return tokens + [f"word{i}" for i in range(size - len(tokens))]


def hf_bert(cls=None, *, seed=0, scale=1.0, **config):
  """A random transformers BERT in eval mode: LayerNorms and biases perturbed, every
  Linear weight times `scale`."""
  cls = cls or transformers.BertForPreTraining
  settings = dict(vocab_size=VOCAB_SIZE, hidden_size=HIDDEN, num_hidden_layers=LAYERS,
                  num_attention_heads=HEADS, intermediate_size=MLP,
                  max_position_embeddings=64, layer_norm_eps=LAYER_NORM_EPS,
                  attn_implementation="eager")
  torch.manual_seed(seed)
  model = cls(transformers.BertConfig(**dict(settings, **config))).eval()
  with torch.no_grad():
    for name, p in model.named_parameters():
      if "LayerNorm" in name or name.endswith("bias"):
        p.copy_(torch.randn_like(p) * 0.2 + float(name.endswith("LayerNorm.weight")))
    for module in model.modules():
      if isinstance(module, torch.nn.Linear):
        module.weight.mul_(scale)
  return model


def save_hf(model, directory, *, lowercase=None):
  """save_pretrained plus the vocab.txt (and tokenizer_config.json) a BERT directory has."""
  model.save_pretrained(directory)
  tokens = vocab_tokens(model.config.vocab_size)
  pathlib.Path(directory, "vocab.txt").write_text("\n".join(tokens) + "\n")
  if lowercase is not None:
    pathlib.Path(directory, "tokenizer_config.json").write_text(
        json.dumps({"do_lower_case": lowercase, "tokenizer_class": "BertTokenizer"}))
  return str(directory)


def import_config(**overrides):
  """base with a tiny run's data and training settings (for the runs that train)."""
  config = registry.load("base")
  config.data.update(max_seq_len=64, max_predictions_per_seq=10)
  config.train.update(batch_size=8, eval_batch_size=8, num_steps=4, log_every=1,
                      eval_every=2, checkpoint_every=2)
  config.optim.update(warmup_steps=1, learning_rate=1e-3)
  for key, value in overrides.items():
    section, name = key.split(".")
    config[section][name] = value
  return config


def import_and_load(hf_dir, workdir, lines=None, **overrides):
  """`prelm import-hf`'s code path, then the run as a notebook loads it."""
  said = [] if lines is None else lines
  hf_import.import_checkpoint(hf_dir, workdir, import_config(**overrides), say=said.append)
  return analysis.load_run(str(workdir))


def batch():
  """3 rows of 16: padded to lengths 16, 11 and 6, segments A and B."""
  rng = np.random.default_rng(0)
  lengths = np.array([16, 11, 6])
  mask = (np.arange(16)[None] < lengths[:, None]).astype(np.int64)
  types = np.zeros_like(mask)
  types[:, 8:] = 1
  return {"input_ids": rng.integers(5, VOCAB_SIZE, mask.shape) * mask,
          "token_type_ids": types * mask, "attention_mask": mask}


def max_abs(ours, theirs):
  return float(np.max(np.abs(np.asarray(ours, np.float64) - theirs.double().numpy())))


def parity(hf_model, model, params, parts=("encoder", "mlm", "nsp")):
  """{output: max |ours - transformers'|} on batch(): prelm's model and params against
  the HF model (BertForPreTraining, BertForMaskedLM or BertModel)."""
  b = batch()
  torch_inputs = {k: torch.tensor(v) for k, v in b.items()}
  with torch.no_grad():
    out = hf_model(**torch_inputs, output_hidden_states=True, output_attentions=True)
    bert = getattr(hf_model, "bert", hf_model)
    encoded = bert(**torch_inputs)
  ours = intermediates.encoder_outputs(model.config, params, b["input_ids"],
                                       b["token_type_ids"], b["attention_mask"])
  diffs = {"sequence_output": max_abs(ours.sequence_output, encoded.last_hidden_state),
           "hidden_states": max_abs(ours.hidden_states, torch.stack(out.hidden_states)),
           "attentions": max_abs(ours.attentions, torch.stack(out.attentions))}
  if "pooled" in parts or "nsp" in parts:
    diffs["pooled"] = max_abs(ours.pooled, encoded.pooler_output)
  mlm, nsp = model.apply({"params": params}, *(jnp.asarray(b[k]) for k in b), None,
                         deterministic=True)
  if "mlm" in parts:
    theirs = getattr(out, "prediction_logits", None)
    theirs = out.logits if theirs is None else theirs
    diffs["mlm_logits"] = max_abs(mlm[..., :VOCAB_SIZE], theirs)
  if "nsp" in parts:
    diffs["nsp_logits"] = max_abs(nsp, out.seq_relationship_logits)
  return diffs


@pytest.fixture(scope="module")
def hf_models():
  return {"normal": hf_bert(), "x5": hf_bert(seed=1, scale=5.0)}


@pytest.fixture(scope="module")
def hf_dirs(hf_models, tmp_path_factory):
  root = tmp_path_factory.mktemp("hf")
  return {name: save_hf(m, root / name) for name, m in hf_models.items()}


@pytest.fixture(scope="module")
def imported(hf_dirs, tmp_path_factory):
  """{scale: (workdir, analysis.load_run(workdir))} of the imported BertForPreTraining."""
  out = {}
  for name, hf_dir in hf_dirs.items():
    workdir = tmp_path_factory.mktemp("imported") / name
    out[name] = workdir, import_and_load(hf_dir, workdir)
  return out


@pytest.mark.parametrize("scale", ["normal", "x5"])
def test_imported_model_computes_what_transformers_computes(scale, hf_models, imported):
  _, (config, model, params, _) = imported[scale]
  diffs = parity(hf_models[scale], model, params)
  print(f"parity {scale}: " + ", ".join(f"{k} {v:.2e}" for k, v in diffs.items()))
  assert max(diffs.values()) < TOLERANCE, diffs
  assert config.model.layer_norm_eps == LAYER_NORM_EPS and config.data.vocab_size == VOCAB_SIZE
  assert (config.model.num_layers, config.model.hidden_size, config.model.num_heads,
          config.model.mlp_dim) == (LAYERS, HIDDEN, HEADS, MLP)
  if scale == "x5":  # activations of order 1 (GELU's tanh form would differ by ~1e-3)
    b = batch()
    outputs = intermediates.encoder_outputs(model.config, params, b["input_ids"])
    assert float(jnp.std(outputs.hidden_states[1:])) > 0.5


def _wrong_qkv_no_transpose(w, heads):
  return w.reshape(w.shape[1], heads, w.shape[0] // heads)


def _wrong_head_split(w, heads):  # reads feature h * head_dim + d as d * heads + h
  return w.T.reshape(w.shape[1], w.shape[0] // heads, heads).transpose(0, 2, 1)


@pytest.mark.parametrize("bug", ["qkv kernel not transposed", "heads split wrongly",
                                 "LayerNorm epsilon dropped", "GELU tanh approximation"])
def test_parity_check_catches_a_wrong_conversion(bug, hf_models, hf_dirs, monkeypatch):
  if bug == "qkv kernel not transposed":
    monkeypatch.setitem(hf_names.TO_PRELM, "qkv_kernel", _wrong_qkv_no_transpose)
  elif bug == "heads split wrongly":
    monkeypatch.setitem(hf_names.TO_PRELM, "qkv_kernel", _wrong_head_split)
  elif bug == "LayerNorm epsilon dropped":  # the config keeps base's 1e-12
    monkeypatch.delitem(hf_config.TO_PRELM, "layer_norm_eps")
  else:
    from prelm_jax.model import layers  # pylint: disable=g-import-not-at-top
    monkeypatch.setattr(layers, "gelu", lambda x: layers.nn.gelu(x, approximate=True))
  # Activations of order 1 (x5): where GELU's two forms differ measurably.
  scale = "x5" if bug == "GELU tanh approximation" else "normal"
  config = import_config()
  state, _ = hf_import.convert(hf_import.read_source(hf_dirs[scale]), config)
  model = pretraining.build_model(config.model, config.data.vocab_size)
  diffs = parity(hf_models[scale], model, state.params)
  print(f"{bug}: max diff {max(diffs.values()):.2e}")
  assert max(diffs.values()) > TOLERANCE, (bug, diffs)


def test_import_writes_a_run_that_says_where_it_came_from(imported, hf_dirs):
  workdir, (config, _, _, tokenizer) = imported["normal"]
  names = sorted(os.listdir(workdir))
  assert names == ["checkpoints", "config.json", "experiment.py", "imported_from.json",
                   "vocab.txt"], names
  assert os.listdir(workdir / "checkpoints") == ["0"]
  origin = json.loads((workdir / "imported_from.json").read_text())
  assert origin["source"] == hf_dirs["normal"] and origin["format"] == "model.safetensors"
  assert origin["fresh"] == [] and origin["tie_word_embeddings"] and origin["step"] == 0
  assert len(origin["weights_sha256"]) == 64
  assert tokenizer.vocab_size == VOCAB_SIZE and config.model.vocab_pad_multiple == 64
  # Padded rows (1200 -> 1216) are zeros; the MLM head never predicts them.
  _, _, params, _ = analysis.load_run(str(workdir))
  table = np.asarray(params["encoder"]["embeddings"]["word_embeddings"]["embedding"])
  assert table.shape == (1216, HIDDEN) and not table[VOCAB_SIZE:].any()


def test_export_then_import_is_exact_and_transformers_loads_the_export(
    imported, hf_models, tmp_path):
  workdir, (_, model, params, tokenizer) = imported["normal"]
  hf_export.export_run(str(workdir), str(tmp_path / "hf"), say=lambda _: None)
  assert sorted(os.listdir(tmp_path / "hf")) == [
      "config.json", "model.safetensors", "special_tokens_map.json", "tokenizer_config.json",
      "vocab.txt"]
  loaded = transformers.BertForPreTraining.from_pretrained(
      str(tmp_path / "hf"), attn_implementation="eager").eval()
  assert max(parity(loaded, model, params).values()) < TOLERANCE
  # The exported tensors are the original model's, bit for bit.
  original = hf_models["normal"].state_dict()
  for name, tensor in loaded.state_dict().items():
    np.testing.assert_array_equal(tensor.numpy(), original[name].numpy(), err_msg=name)
  # Its tokenizer splits (and lowercases) text as prelm's does.
  hf_tokenizer = transformers.BertTokenizerFast.from_pretrained(str(tmp_path / "hf"))
  text = "Hello, World! word7 x9-y?"
  assert hf_tokenizer(text, add_special_tokens=False)["input_ids"] == \
      tokenizer.encode_lines([text])[0]
  # ... and back: the same params, bit for bit (padding rows included: zeros both times).
  _, _, again, _ = import_and_load(str(tmp_path / "hf"), tmp_path / "again")
  jax.tree.map(np.testing.assert_array_equal, jax.device_get(params),
               jax.device_get(again))


def test_scanned_layers_import_and_export(hf_dirs, hf_models, imported, tmp_path):
  _, _, scanned, _ = import_and_load(hf_dirs["normal"], tmp_path / "scanned",
                                     **{"model.scan_layers": True})
  assert set(scanned["encoder"]) == {"embeddings", "layers", "pooler"}
  assert scanned["encoder"]["layers"]["mlp"]["wi"]["kernel"].shape == (LAYERS, HIDDEN, MLP)
  config, model, _, _ = analysis.load_run(str(tmp_path / "scanned"))
  assert config.model.scan_layers
  assert max(parity(hf_models["normal"], model, scanned).values()) < TOLERANCE
  hf_export.export_run(str(tmp_path / "scanned"), str(tmp_path / "hf"), say=lambda _: None)
  loaded = transformers.BertForPreTraining.from_pretrained(
      str(tmp_path / "hf"), attn_implementation="eager").eval()
  assert max(parity(loaded, model, scanned).values()) < TOLERANCE
  # Unscanned import of the scanned run's export: the unscanned import's params exactly.
  _, (_, _, plain, _) = imported["normal"]
  _, _, again, _ = import_and_load(str(tmp_path / "hf"), tmp_path / "plain")
  jax.tree.map(np.testing.assert_array_equal, jax.device_get(plain), jax.device_get(again))


def test_bert_model_layout_gets_fresh_heads(tmp_path):
  hf_model = hf_bert(transformers.BertModel)
  hf_dir = save_hf(hf_model, tmp_path / "hf")
  assert not any(k.startswith("bert.") for k in
                 __import__("safetensors.numpy").numpy.load_file(
                     os.path.join(hf_dir, "model.safetensors")))
  lines = []
  config, model, params, _ = import_and_load(hf_dir, tmp_path / "run", lines)
  assert "Initialised fresh, as prelm train would (not in model.safetensors): MLM head, " \
      "NSP head" in lines
  diffs = parity(hf_model, model, params, parts=("pooled",))
  assert max(diffs.values()) < TOLERANCE, diffs
  # The heads are the ones `prelm train` would start from (config.seed).
  state, _ = hf_import.run_files.initial_state(config, VOCAB_SIZE)
  for head in ("mlm_head", "nsp_head"):
    jax.tree.map(np.testing.assert_array_equal, jax.device_get(state.params[head]),
                 jax.device_get(params[head]))
  assert json.loads((tmp_path / "run" / "imported_from.json").read_text())["fresh"] == [
      "MLM head", "NSP head"]


def test_masked_lm_layout_keeps_its_mlm_head(tmp_path):
  hf_model = hf_bert(transformers.BertForMaskedLM)
  lines = []
  _, model, params, _ = import_and_load(save_hf(hf_model, tmp_path / "hf"), tmp_path / "run",
                                        lines)
  assert any(line.endswith("): pooler, NSP head") for line in lines), lines
  diffs = parity(hf_model, model, params, parts=("mlm",))
  assert max(diffs.values()) < TOLERANCE, diffs


def test_untied_decoder_is_loaded_and_exported(tmp_path):
  hf_model = hf_bert(tie_word_embeddings=False)
  with torch.no_grad():  # untied, but initialised equal: make them differ
    hf_model.cls.predictions.decoder.weight.add_(0.01)
  lines = []
  config, model, params, _ = import_and_load(save_hf(hf_model, tmp_path / "hf"),
                                             tmp_path / "run", lines)
  assert not config.model.tie_word_embeddings
  assert "output_embeddings" in params["mlm_head"]
  assert max(parity(hf_model, model, params).values()) < TOLERANCE
  hf_export.export_run(str(tmp_path / "run"), str(tmp_path / "out"), say=lambda _: None)
  assert json.loads((tmp_path / "out" / "config.json").read_text())[
      "tie_word_embeddings"] is False
  loaded = transformers.BertForPreTraining.from_pretrained(
      str(tmp_path / "out"), attn_implementation="eager").eval()
  assert max(parity(loaded, model, params).values()) < TOLERANCE


def test_pytorch_bin_is_read_with_weights_only_and_safetensors_preferred(
    hf_models, imported, tmp_path):
  hf_dir = tmp_path / "bin"
  save_hf(hf_models["normal"], hf_dir)
  os.remove(hf_dir / "model.safetensors")
  # A plain state dict, as older transformers saved it: the tied decoder included.
  state = hf_models["normal"].state_dict()
  assert hf_names.DECODER in state
  torch.save(state, hf_dir / "pytorch_model.bin")
  config, _, params, _ = import_and_load(str(hf_dir), tmp_path / "run")
  assert config.model.tie_word_embeddings
  _, (_, _, expected, _) = imported["normal"]
  jax.tree.map(np.testing.assert_array_equal, jax.device_get(expected),
               jax.device_get(params))
  # Both files: model.safetensors is read, the .bin (other weights) left alone.
  both = tmp_path / "both"
  save_hf(hf_models["normal"], both)
  torch.save(hf_models["x5"].state_dict(), both / "pytorch_model.bin")
  _, _, params, _ = import_and_load(str(both), tmp_path / "run_both")
  jax.tree.map(np.testing.assert_array_equal, jax.device_get(expected),
               jax.device_get(params))
  origin = json.loads((tmp_path / "run_both" / "imported_from.json").read_text())
  assert origin["format"] == "model.safetensors"


class _Payload:
  """Unpickling this runs a shell command (what a malicious .bin would do)."""

  def __init__(self, marker):
    self.marker = marker

  def __reduce__(self):
    return os.system, (f"touch {self.marker}",)


class _Custom:
  pass


@pytest.mark.parametrize("payload", ["os.system", "custom class"])
def test_a_pickle_that_runs_code_is_refused(payload, hf_models, tmp_path, one_line_error):
  hf_dir = tmp_path / "hf"
  save_hf(hf_models["normal"], hf_dir)
  os.remove(hf_dir / "model.safetensors")
  marker = tmp_path / "pwned"
  state = dict(hf_models["normal"].state_dict())
  state["evil"] = _Payload(marker) if payload == "os.system" else _Custom()
  torch.save(state, hf_dir / "pytorch_model.bin")
  message = one_line_error(
      InteropError, lambda: hf_import.import_checkpoint(str(hf_dir), str(tmp_path / "run"),
                                                        say=lambda _: None),
      "pytorch_model.bin is a pickle that needs more than tensors", "weights_only=True")
  assert ("system" in message) if payload == "os.system" else ("_Custom" in message)
  assert not marker.exists() and not (tmp_path / "run").exists()


def google_variables(hf_model):
  """The HF model's tensors under the names of google-research/bert's checkpoints, in
  TF's layout (kernels [in, out]; seq_relationship/output_weights [2, H]), with the
  optimizer slots a pre-training checkpoint also holds."""
  out = {"global_step": np.array(1000)}
  for name, tensor in hf_model.state_dict().items():
    array = tensor.numpy()
    if name in ("cls.predictions.decoder.weight", "cls.predictions.decoder.bias"):
      continue
    special = {"cls.predictions.bias": "cls/predictions/output_bias",
               "cls.seq_relationship.weight": "cls/seq_relationship/output_weights",
               "cls.seq_relationship.bias": "cls/seq_relationship/output_bias"}
    if name in special:
      out[special[name]] = array
      continue
    tf_name = name.replace("encoder.layer.", "encoder.layer_").replace(".", "/")
    if "_embeddings/" in tf_name:
      tf_name = tf_name.removesuffix("/weight")
    elif "LayerNorm" in tf_name:
      tf_name = tf_name.replace("/weight", "/gamma").replace("/bias", "/beta")
    elif tf_name.endswith("/weight"):
      tf_name, array = tf_name.replace("/weight", "/kernel"), array.T
    out[tf_name] = array
    out[tf_name + "/adam_m"] = np.zeros_like(array)
  return out


def test_google_tf_checkpoint_names_convert(hf_models, tmp_path, monkeypatch):
  hf_model = hf_models["normal"]
  variables = google_variables(hf_model)
  assert "bert/encoder/layer_2/attention/self/query/kernel" in variables
  assert variables["cls/seq_relationship/output_weights"].shape == (2, HIDDEN)
  directory = tmp_path / "uncased_L-3_H-96_A-3"
  directory.mkdir()
  settings = {k: v for k, v in json.loads(hf_model.config.to_json_string()).items()
              if k in hf_config.TO_PRELM or k == "hidden_act"}
  (directory / "bert_config.json").write_text(json.dumps(settings))
  (directory / "bert_model.ckpt.index").write_bytes(b"")
  (directory / "vocab.txt").write_text("\n".join(vocab_tokens()) + "\n")
  try:
    import tensorflow  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import
  except ImportError:  # the one-line error names what to install
    with pytest.raises(InteropError, match=r"pip install 'prelm_jax\[tf\]'"):
      hf_import.import_checkpoint(str(directory), str(tmp_path / "no_tf"), say=print)
  monkeypatch.setattr(google_tf, "load_variables",
                      lambda prefix: variables if prefix.endswith("bert_model.ckpt") else {})
  lines = []
  config, model, params, _ = import_and_load(str(directory), tmp_path / "run", lines)
  assert config.data.lowercase and "Google TF checkpoint" in lines[0]
  assert max(parity(hf_model, model, params).values()) < TOLERANCE
  # Google's cased releases say so in their directory name.
  assert google_tf.lowercase_of(str(tmp_path / "cased_L-12_H-768_A-12"))[0] is False


def write_sentiment(path, n):
  rng = np.random.default_rng(n)
  lines = ["sentence\tlabel"]
  for _ in range(n):
    label = int(rng.integers(2))
    words = list(rng.choice(["the", "film", "was", "plot"], 4)) + [["bad", "good"][label]]
    lines.append(" ".join(words) + f"\t{label}")
  path.write_text("\n".join(lines) + "\n")
  return str(path)


def test_imported_run_fine_tunes_from_init_from(imported, tmp_path):
  workdir, (_, _, params, _) = imported["normal"]
  config = registry.load("sst2")
  config.init_from = str(workdir)
  config.data.update(train_path=write_sentiment(tmp_path / "train.tsv", 32),
                     dev_path=write_sentiment(tmp_path / "dev.tsv", 16), max_seq_len=32)
  config.train.update(num_epochs=0.0, num_steps=2, batch_size=8, eval_batch_size=8,
                      log_every=1, eval_every=2, checkpoint_every=2)
  config.optim.update(warmup_fraction=0.0, warmup_steps=1)
  result = train.run(config, str(tmp_path / "sst"))
  assert result.final_metrics["step"] == 2 and np.isfinite(result.final_metrics["loss"])
  # The imported encoder, two small steps on (a fresh one would differ by ~0.02).
  assert config.model.hidden_size == HIDDEN and config.model.layer_norm_eps == LAYER_NORM_EPS
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=2e-3),
               jax.device_get(params["encoder"]),
               jax.device_get(result.state.params["encoder"]))


@pytest.mark.slow  # three `prelm` processes, and the pydocs corpus on first use
def test_import_hf_then_prelm_train_continues_pre_training(
    hf_dirs, pydocs_data_dir, tmp_path, read_metrics):
  """The command line end to end: import-hf, then `prelm train` resumes the run from step
  0 with its experiment.py, then export-hf of the trained run loads in transformers."""
  workdir, env = tmp_path / "run", dict(os.environ, XLA_FLAGS="")
  settings = {"data.max_seq_len": 64, "data.max_predictions_per_seq": 10,
              "train.batch_size": 8, "train.eval_batch_size": 8, "train.num_steps": 2,
              "train.log_every": 1, "train.eval_every": 2, "train.checkpoint_every": 2,
              "optim.warmup_steps": 1, "data.tfds_data_dir": pydocs_data_dir}
  overrides = [f"--config.{k}={v}" for k, v in settings.items()]
  def prelm(*args):
    return subprocess.run([sys.executable, "-m", "prelm_jax.main", *args], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=600)
  proc = prelm("import-hf", hf_dirs["normal"], str(workdir), *overrides)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert f"prelm train --config {workdir}/experiment.py --workdir {workdir}" in proc.stdout
  proc = prelm("train", "--config", str(workdir / "experiment.py"), "--workdir",
               str(workdir))
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert "Resuming from the checkpoint at step 0" in proc.stdout, proc.stdout
  assert [r["step"] for r in read_metrics(workdir, "train")] == [1, 2]
  assert workdir.joinpath("checkpoints", "2").is_dir()
  # A trained run (random padding rows: nothing stops weight decay from them) exports.
  proc = prelm("export-hf", str(workdir), str(tmp_path / "hf"))
  assert proc.returncode == 0, proc.stderr[-3000:]
  _, model, params, _ = analysis.load_run(str(workdir))
  loaded = transformers.BertForPreTraining.from_pretrained(
      str(tmp_path / "hf"), attn_implementation="eager").eval()
  assert max(parity(loaded, model, params).values()) < TOLERANCE
  # Importing again into the same directory is refused, in one line.
  proc = prelm("import-hf", hf_dirs["normal"], str(workdir))
  assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
  assert "already holds a prelm run" in proc.stderr
