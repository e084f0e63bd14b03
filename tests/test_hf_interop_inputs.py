"""HF interop without torch: what is refused (one line, nothing written), Google's name
map, prelm's layout variations, and an import that never imports torch.

The HF directories here are written with numpy's safetensors writer: shapes matter,
values do not (tests/test_hf_interop.py compares values with transformers).
"""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from safetensors import numpy as safetensors_numpy

from prelm_jax import registry
from prelm_jax.interop import InteropError
from prelm_jax.interop import google_tf
from prelm_jax.interop import hf_export
from prelm_jax.interop import hf_files
from prelm_jax.interop import hf_import
from prelm_jax.interop import param_layout

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + list("abcdefghij") + [
    f"##{c}" for c in "abcdefghij"] + [f"word{i}" for i in range(15)]
V, H, LAYERS, MLP, POSITIONS = len(VOCAB), 8, 2, 12, 16
BERT_CONFIG = {"model_type": "bert", "architectures": ["BertForPreTraining"],
               "vocab_size": V, "hidden_size": H, "num_hidden_layers": LAYERS,
               "num_attention_heads": 2, "intermediate_size": MLP,
               "max_position_embeddings": POSITIONS, "hidden_act": "gelu"}


def bert_shapes():
  """{HF name: shape} of a BertForPreTraining of BERT_CONFIG's size, listed by hand."""
  shapes = {"bert.embeddings.word_embeddings.weight": (V, H),
            "bert.embeddings.position_embeddings.weight": (POSITIONS, H),
            "bert.embeddings.token_type_embeddings.weight": (2, H)}
  layer_norms = ["bert.embeddings.LayerNorm", "cls.predictions.transform.LayerNorm"]
  for i in range(LAYERS):
    p = f"bert.encoder.layer.{i}."
    for name, out, inp in [("attention.self.query", H, H), ("attention.self.key", H, H),
                           ("attention.self.value", H, H), ("attention.output.dense", H, H),
                           ("intermediate.dense", MLP, H), ("output.dense", H, MLP)]:
      shapes[p + name + ".weight"], shapes[p + name + ".bias"] = (out, inp), (out,)
    layer_norms += [p + "attention.output.LayerNorm", p + "output.LayerNorm"]
  for name in layer_norms:
    shapes[name + ".weight"] = shapes[name + ".bias"] = (H,)
  for name, out in [("bert.pooler.dense", H), ("cls.predictions.transform.dense", H),
                    ("cls.seq_relationship", 2)]:
    shapes[name + ".weight"], shapes[name + ".bias"] = (out, H), (out,)
  shapes["cls.predictions.bias"] = (V,)
  return shapes


def write_hf_dir(path, *, config=None, drop=(), shapes=None, vocab=VOCAB):
  path.mkdir(parents=True, exist_ok=True)
  rng = np.random.default_rng(0)
  tensors = {n: rng.normal(size=s).astype(np.float32)
             for n, s in (shapes or bert_shapes()).items() if n not in drop}
  safetensors_numpy.save_file(tensors, str(path / "model.safetensors"),
                              metadata={"format": "pt"})
  (path / "config.json").write_text(json.dumps(config or BERT_CONFIG))
  (path / "vocab.txt").write_text("\n".join(vocab) + "\n")
  return str(path)


def import_into(source, workdir):
  config = registry.load("base")
  config.data.max_seq_len = POSITIONS
  return lambda: hf_import.import_checkpoint(str(source), str(workdir), config,
                                             say=lambda _: None)


def _config(**changes):
  return {**BERT_CONFIG, **changes}


@pytest.mark.parametrize("make, needles", [
    (lambda d: d / "missing", ["is not a directory"]),
    (lambda d: (d / "empty").mkdir() or d / "empty",
     ["has no config.json (a HuggingFace model) or bert_config.json"]),
    (lambda d: (write_hf_dir(d / "m"), os.remove(d / "m" / "model.safetensors"),
                (d / "m" / "tf_model.h5").write_bytes(b""))[0],
     ["has no model.safetensors or pytorch_model.bin", "tf_model.h5 is not read"]),
    (lambda d: write_hf_dir(d / "m", config={"model_type": "roberta", "architectures": [
        "RobertaForMaskedLM"], **{k: v for k, v in BERT_CONFIG.items() if "arch" not in k
                                  and k != "model_type"}}),
     ["describes a 'roberta' (RobertaForMaskedLM) model", "prelm converts BERT only"]),
    (lambda d: write_hf_dir(d / "m", config={"model_type": "distilbert", "dim": 8}),
     ["'distilbert' model"]),
    (lambda d: write_hf_dir(d / "m", config=_config(model_type="albert",
                                                    architectures=["AlbertForMaskedLM"])),
     ["'albert' (AlbertForMaskedLM)"]),
    (lambda d: write_hf_dir(d / "m", config=_config(hidden_act="gelu_new")),
     ["hidden_act 'gelu_new'", "exact (erf) GELU"]),
    (lambda d: write_hf_dir(d / "m", config=_config(hidden_size=8.5)),
     ["has hidden_size 8.5; it must be a whole number"]),
    (lambda d: write_hf_dir(d / "m", config=_config(position_embedding_type="relative_key")),
     ["position_embedding_type 'relative_key'"]),
    (lambda d: write_hf_dir(d / "m", config={k: v for k, v in BERT_CONFIG.items()
                                             if k != "intermediate_size"}),
     ["lacks intermediate_size"]),
    (lambda d: write_hf_dir(d / "m", vocab=VOCAB[:-1]),
     [f"vocab.txt has {V - 1} tokens", f"says vocab_size {V}", f"has {V} embedding rows"]),
    (lambda d: write_hf_dir(d / "m", config=_config(vocab_size=V + 1), vocab=VOCAB + ["x"]),
     [f"vocab.txt has {V + 1} tokens", f"has {V} embedding rows"]),
    (lambda d: write_hf_dir(d / "m", vocab=VOCAB[:-1] + ["[CLS]"]),
     ["vocab file", "malformed", "duplicate", "fix it in the model directory"]),
    (lambda d: write_hf_dir(d / "m", drop=["bert.encoder.layer.1.output.dense.bias"]),
     ["lacks 1 of the", "tensors of the BERT encoder: bert.encoder.layer.1.output.dense.bias"]),
    (lambda d: write_hf_dir(d / "m", drop=["cls.predictions.transform.dense.weight",
                                           "cls.predictions.bias"]),
     ["lacks 2 of the 5 tensors of the BERT MLM head"]),
    (lambda d: write_hf_dir(d / "m", shapes={**bert_shapes(), **{
        "bert.encoder.layer.0.intermediate.dense.weight": (MLP + 1, H)}}),
     ["bert.encoder.layer.0.intermediate.dense.weight has shape (13, 8)", "(8, 12)"]),
])
def test_bad_sources_are_refused_in_one_line(make, needles, tmp_path, one_line_error):
  source = make(tmp_path)
  one_line_error(InteropError, import_into(source, tmp_path / "run"), *needles)
  assert not (tmp_path / "run").exists()
  assert not [n for n in os.listdir(tmp_path) if n.startswith(".run.")]


def test_an_existing_run_or_other_files_are_never_overwritten(tmp_path, one_line_error):
  source = write_hf_dir(tmp_path / "hf")
  (tmp_path / "run").mkdir()
  (tmp_path / "run" / "config.json").write_text("{}")
  one_line_error(InteropError, import_into(source, tmp_path / "run"),
                 "already holds a prelm run (config.json)", "nothing is overwritten")
  (tmp_path / "notes").mkdir()
  (tmp_path / "notes" / "todo.txt").write_text("x")
  one_line_error(InteropError, import_into(source, tmp_path / "notes"), "already holds (todo.txt)")
  assert os.listdir(tmp_path / "run") == ["config.json"]
  one_line_error(InteropError, import_into(source, source), "already holds a HuggingFace "
                 "checkpoint")


def test_an_empty_workdir_is_used_and_heads_come_and_go_by_part(tmp_path):
  source = write_hf_dir(tmp_path / "hf", drop=[n for n in bert_shapes()
                                              if n.startswith("cls.seq_relationship")])
  (tmp_path / "run").mkdir()
  result = import_into(source, tmp_path / "run")()
  assert result.fresh == ("NSP head",) and result.ignored == ()
  assert "checkpoints" in os.listdir(tmp_path / "run")


def test_google_checkpoint_without_tensorflow_names_the_extra(tmp_path, one_line_error):
  try:
    import tensorflow  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import
    pytest.skip("tensorflow is installed here")
  except ImportError:
    pass
  source = tmp_path / "uncased_L-2_H-8_A-2"
  source.mkdir()
  (source / "bert_config.json").write_text(json.dumps(
      {k: v for k, v in BERT_CONFIG.items() if k not in ("model_type", "architectures")}))
  (source / "bert_model.ckpt.index").write_bytes(b"")
  (source / "vocab.txt").write_text("\n".join(VOCAB) + "\n")
  one_line_error(InteropError, import_into(source, tmp_path / "run"),
                 "bert_model.ckpt is a TensorFlow checkpoint", "pip install 'prelm_jax[tf]'")


def test_sharded_and_bfloat16_safetensors_are_read(tmp_path):
  single = write_hf_dir(tmp_path / "single")
  _, _, expected = hf_files.read_weights(single)
  sharded = tmp_path / "sharded"
  sharded.mkdir()
  names = sorted(expected)
  halves = {"model-00001-of-00002.safetensors": names[::2],
            "model-00002-of-00002.safetensors": names[1::2]}
  for shard, shard_names in halves.items():
    safetensors_numpy.save_file({n: expected[n] for n in shard_names}, str(sharded / shard))
  (sharded / "model.safetensors.index.json").write_text(json.dumps(
      {"weight_map": {n: shard for shard, ns in halves.items() for n in ns}}))
  _, kind, tensors = hf_files.read_weights(str(sharded))
  assert kind == "model.safetensors.index.json" and tensors.keys() == expected.keys()
  for name, array in expected.items():
    np.testing.assert_array_equal(tensors[name], array)
  # numpy has no bfloat16 of its own: such files are read through jax's.
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  from safetensors import flax as safetensors_flax  # pylint: disable=g-import-not-at-top
  (tmp_path / "bf16").mkdir()
  safetensors_flax.save_file({"w": jnp.arange(4, dtype=jnp.bfloat16)},
                             str(tmp_path / "bf16" / "model.safetensors"))
  _, _, tensors = hf_files.read_weights(str(tmp_path / "bf16"))
  np.testing.assert_array_equal(tensors["w"].astype(np.float32), np.arange(4.0))


def test_google_names_map_to_hf_names():
  expected = {
      "bert/embeddings/word_embeddings": ("bert.embeddings.word_embeddings.weight", False),
      "bert/embeddings/LayerNorm/gamma": ("bert.embeddings.LayerNorm.weight", False),
      "bert/encoder/layer_11/attention/self/query/kernel":
          ("bert.encoder.layer.11.attention.self.query.weight", True),
      "bert/encoder/layer_0/output/LayerNorm/beta":
          ("bert.encoder.layer.0.output.LayerNorm.bias", False),
      "bert/pooler/dense/bias": ("bert.pooler.dense.bias", False),
      "cls/predictions/transform/dense/kernel":
          ("cls.predictions.transform.dense.weight", True),
      "cls/predictions/output_bias": ("cls.predictions.bias", False),
      "cls/seq_relationship/output_weights": ("cls.seq_relationship.weight", False),
      "bert/encoder/layer_0/attention/self/query/kernel/adam_m": None,
      "global_step": None,
  }
  assert {n: google_tf.hf_name(n) for n in expected} == expected
  kernel = np.arange(6.0).reshape(2, 3)
  converted = google_tf.to_hf({"bert/pooler/dense/kernel": kernel, "global_step": 3})
  np.testing.assert_array_equal(converted["bert.pooler.dense.weight"], kernel.T)
  assert list(converted) == ["bert.pooler.dense.weight"]


def test_layout_variations_round_trip():
  rng = np.random.default_rng(0)
  flat = {("encoder", f"layer_{i}", "mlp", "wi", "kernel"): rng.normal(size=(2, 3))
          for i in range(3)}
  flat[("encoder", "embeddings", "word_embeddings", "embedding")] = rng.normal(size=(5, 2))
  flat[("mlm_head", "output_bias")] = rng.normal(size=(5,))
  stacked = param_layout.stack_layers(flat, 3)
  assert stacked[("encoder", "layers", "mlp", "wi", "kernel")].shape == (3, 2, 3)
  padded = param_layout.pad_vocab(stacked, 8)
  assert padded[("mlm_head", "output_bias")].shape == (8,)
  assert not padded[("encoder", "embeddings", "word_embeddings", "embedding")][5:].any()
  back = param_layout.strip_vocab(param_layout.unstack_layers(padded), 5)
  assert back.keys() == flat.keys()
  for path, array in flat.items():
    np.testing.assert_array_equal(back[path], array)
  assert param_layout.flatten(param_layout.nest(flat)).keys() == flat.keys()


@pytest.mark.parametrize("change, needles", [
    ({"model.pre_ln": True}, ["is pre-LN"]),
    ({"model.alibi": True}, ["uses ALiBi"]),
    ({"model.mlp_activation": "geglu"}, ["its feed-forward is 'geglu'"]),
    ({"data.sentence_objective": "none"}, ["trained MLM-only"]),
    ({"model.encoder": "lstm"}, ["its encoder is 'lstm'"]),
    ({"task": "classify"}, ["it is a 'classify' run"]),
])
def test_export_refuses_what_hf_bert_cannot_hold(change, needles, tmp_path, one_line_error):
  config = registry.load("base").to_dict()
  for key, value in change.items():
    if "." in key:
      section, name = key.split(".")
      config[section][name] = value
    else:
      config[key] = value
  (tmp_path / "run").mkdir()
  (tmp_path / "run" / "config.json").write_text(json.dumps(config))
  one_line_error(InteropError, lambda: hf_export.export_run(str(tmp_path / "run"),
                                                            str(tmp_path / "hf")),
                 "cannot become a HuggingFace BERT", *needles)
  assert not (tmp_path / "hf").exists()


def test_export_refuses_what_is_not_a_prelm_run(tmp_path, one_line_error):
  one_line_error(InteropError, lambda: hf_export.export_run(str(tmp_path), str(tmp_path / "o")),
                 "is not a prelm run (no config.json)")
  write_hf_dir(tmp_path / "hf")
  one_line_error(InteropError, lambda: hf_export.export_run(str(tmp_path / "hf"),
                                                            str(tmp_path / "o")),
                 "is not a prelm run", "a HuggingFace model's")
  (tmp_path / "fresh").mkdir()
  (tmp_path / "fresh" / "config.json").write_text(json.dumps(registry.load("base").to_dict()))
  one_line_error(InteropError, lambda: hf_export.export_run(str(tmp_path / "fresh"),
                                                            str(tmp_path / "o")),
                 "has no checkpoint yet")


def test_the_command_imports_safetensors_without_torch(tmp_path):
  """`prelm import-hf` end to end, in a process where importing torch (or transformers)
  fails: model.safetensors needs neither. Then the one-line errors of the command."""
  source = write_hf_dir(tmp_path / "hf")
  script = """import sys
class NotInstalled:  # as if torch and transformers were not installed
  def find_spec(self, name, path=None, target=None):
    if name.split(".")[0] in ("torch", "transformers"):
      raise ImportError(name + " is blocked by the test")
sys.meta_path.insert(0, NotInstalled())
from prelm_jax import main
sys.argv = ["prelm"] + sys.argv[1:]
main.cli()
"""
  def prelm(*args):
    return subprocess.run([sys.executable, "-c", script, *args], capture_output=True,
                          text=True, timeout=300,
                          cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  proc = prelm("import-hf", source, str(tmp_path / "run"), "--config.data.max_seq_len=16")
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert "Imported" in proc.stdout and "step 0" in proc.stdout
  saved = json.loads((tmp_path / "run" / "config.json").read_text())
  assert saved["model"]["num_layers"] == LAYERS and saved["data"]["max_seq_len"] == 16
  for args, needle in [(("import-hf", str(tmp_path / "nowhere"), str(tmp_path / "r2")),
                        "is not a directory"),
                       (("import-hf", source), "takes two directories, HF_DIR WORKDIR"),
                       (("export-hf", str(tmp_path / "run"), str(tmp_path / "o"), "--config",
                         "base"), "drop --config")]:
    proc = prelm(*args)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.startswith("prelm: error: ") and proc.stderr.count("\n") == 1, \
        proc.stderr
    assert needle in proc.stderr
