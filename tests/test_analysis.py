"""analysis.py: a run opened in a notebook (params only, any mesh), what its model makes
of text, fine-tuned runs' predictions, and one-line errors for what is not a run."""
import json
import os
import pathlib
import random
import subprocess
import sys

import jax
import numpy as np
import orbax.checkpoint as ocp
import pandas as pd
import pytest

from prelm_jax import analysis
from prelm_jax import errors
from prelm_jax import predict
from prelm_jax import registry
from prelm_jax import train

REPO = pathlib.Path(__file__).resolve().parents[1]
PROMPTS = ("return the [MASK] of the function.", "the [MASK] of the list is [MASK].")


def fill_masks(model, params, tokenizer):
  return [analysis.fill_mask(model, params, tokenizer, p, top_k=5) for p in PROMPTS]


@pytest.fixture(scope="module")
def pretrained(pydocs_data_dir, tmp_path_factory, tiny_config):
  """(workdir, fill-mask answers of the training process): a tiny pre-training run on
  an 8-device fsdp mesh, checkpoints at steps 2 and 4, answered with its sharded params."""
  workdir = tmp_path_factory.mktemp("pretrained")
  config = tiny_config(pydocs_data_dir, num_steps=4, checkpoint_every=2, eval_every=2)
  config.mesh.update(data=1, fsdp=8)
  result = train.run(config, str(workdir))
  table = result.state.params["encoder"]["embeddings"]["word_embeddings"]["embedding"]
  assert len(table.sharding.device_set) == 8  # really sharded over the 8 devices
  return workdir, fill_masks(result.model, result.state.params, result.tokenizer)


def test_a_run_loads_its_params_alone_and_unpacks_as_before(pretrained, monkeypatch):
  workdir, _ = pretrained
  asked = []
  restore = ocp.CheckpointManager.restore
  def spy(self, step, args=None, **kwargs):
    asked.append(args)
    return restore(self, step, args=args, **kwargs)
  monkeypatch.setattr(ocp.CheckpointManager, "restore", spy)
  run = analysis.load_run(workdir)
  config, model, params, tokenizer = run
  assert (config, model, params, tokenizer) == (run.config, run.model, run.params,
                                                run.tokenizer)
  assert run.task.name == "pretrain" and run.workdir == str(workdir)
  assert run.steps == (2, 4) and run.step == 4
  assert analysis.load_run(workdir, step=2).step == 2
  monkeypatch.chdir(workdir.parent)  # a path relative to the notebook's folder
  assert analysis.load_run(workdir.name, step=2).workdir == str(workdir)
  assert config.mesh.fsdp == 8  # the run's config as it trained, not the loading mesh
  # Only the params were asked for: orbax's partial restore never reads opt_state.
  assert len(asked) == 3  # the three loads
  for args in asked:
    assert set(args.state.item) == {"params"} and args.state.partial_restore
  one = {jax.local_devices()[0]}
  assert all(leaf.sharding.device_set == one for leaf in jax.tree.leaves(params))
  metrics = run.metrics
  assert isinstance(metrics, pd.DataFrame)
  assert list(metrics[metrics.split == "eval"].step) == [2, 4]
  assert {"step", "split", "loss", "mlm_accuracy"} <= set(metrics.columns)
  # Or onto several devices, a copy on each.
  two = analysis.load_run(workdir, devices=jax.devices()[:2])
  assert all(len(leaf.sharding.device_set) == 2 for leaf in jax.tree.leaves(two.params))
  assert [t for t, _ in two.fill_mask(PROMPTS[0])[0]] == [
      t for t, _ in run.fill_mask(PROMPTS[0])[0]]
  assert "task pretrain, step 4" in repr(run)


def test_an_fsdp8_checkpoint_answers_alike_in_a_one_device_process(pretrained):
  workdir, trained = pretrained
  code = ("import json, jax\n"
          "from prelm_jax import analysis\n"
          "assert jax.device_count() == 1, jax.devices()\n"
          f"run = analysis.load_run({str(workdir)!r})\n"
          f"print(json.dumps([run.fill_mask(p, top_k=5) for p in {PROMPTS!r}]))\n")
  env = dict(os.environ, JAX_PLATFORMS="cpu",
             XLA_FLAGS="--xla_force_host_platform_device_count=1")
  proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env,
                        capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  loaded = json.loads(proc.stdout)
  assert len(loaded) == len(trained)
  for prompt_loaded, prompt_trained in zip(loaded, trained):
    for (mask_loaded, mask_trained) in zip(prompt_loaded, prompt_trained, strict=True):
      assert [t for t, _ in mask_loaded] == [t for t, _ in mask_trained]
      np.testing.assert_allclose([p for _, p in mask_loaded], [p for _, p in mask_trained],
                                 rtol=0, atol=1e-5)


def test_encode_attention_maps_and_neighbours(pretrained, one_line_error):
  run = analysis.load_run(pretrained[0])
  texts = ["the list is sorted.", "open a file", ("a key", "the value")]
  single = run.encode(texts[:2])
  assert single.pooled.shape == (2, 32)
  for tokens, vectors in zip(single.tokens, single.vectors):
    assert tokens[0] == "[CLS]" and tokens[-1] == "[SEP]" and "[PAD]" not in tokens
    assert vectors.shape == (len(tokens), 32)
  # The same numbers as the model's own encode, at the real tokens.
  row = [run.tokenizer.cls_id] + run.tokenizer.encode_lines([texts[0]])[0] + [
      run.tokenizer.sep_id]
  sequence, pooled = run.model.apply({"params": run.params}, np.array([row]),
                                     np.zeros((1, len(row)), np.int32),
                                     np.ones((1, len(row)), np.int32),
                                     method=run.model.encode)
  np.testing.assert_allclose(single.vectors[0], sequence[0], rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(single.pooled[0], pooled[0], rtol=1e-5, atol=1e-5)
  pair = run.encode([texts[2]], layer=0)
  assert pair.tokens[0].count("[SEP]") == 2 and pair.vectors[0].shape[0] == len(
      pair.tokens[0])
  assert not np.allclose(run.encode(texts[:1], layer=0).vectors[0], single.vectors[0])
  one_line_error(errors.PrelmError, lambda: run.encode(["a", ("b", "c")]), "all one kind")

  maps, tokens = run.attention_maps(texts[0])
  assert tokens == single.tokens[0]
  assert maps.shape == (1, 2, len(tokens), len(tokens))  # layers, heads, queries, keys
  np.testing.assert_allclose(maps.sum(-1), 1.0, rtol=1e-5)

  neighbours = run.nearest_tokens("list", k=5)
  assert len(neighbours) == 5
  names = [t for t, _ in neighbours]
  assert "list" not in names and not any(t.startswith("[") for t in names)
  similarities = [s for _, s in neighbours]
  assert similarities == sorted(similarities, reverse=True)
  table = np.asarray(run.params["encoder"]["embeddings"]["word_embeddings"]["embedding"])
  table = table[:run.tokenizer.vocab_size]
  unit = table / np.linalg.norm(table, axis=1, keepdims=True)
  cosine = unit @ unit[run.tokenizer.token_to_id("list")]
  for token, similarity in neighbours:
    assert abs(cosine[run.tokenizer.token_to_id(token)] - similarity) < 1e-5
  others = [c for i, (c, t) in enumerate(zip(cosine, run.tokenizer.tokens))
            if t != "list" and not t.startswith("[")]
  assert max(others) == pytest.approx(similarities[0])  # no closer token was left out
  one_line_error(errors.PrelmError, lambda: run.nearest_tokens("zzqqxx"),
                 "'zzqqxx' is not in the vocabulary", "splits into")
  one_line_error(errors.PrelmError, lambda: run.predict(["a text"]),
                 "'pretrain' run: predict needs a fine-tuned one")
  one_line_error(errors.PrelmError, lambda: run.fill_mask("no mask here"), "no [MASK]")


def test_what_is_not_a_loadable_run_is_one_line(pretrained, tmp_path, one_line_error):
  workdir = pretrained[0]
  missing = tmp_path / "missing"
  empty = tmp_path / "empty"
  empty.mkdir()
  untrained = tmp_path / "untrained"
  (untrained / "checkpoints").mkdir(parents=True)
  (untrained / "config.json").write_text((workdir / "config.json").read_text())
  for path, needles in ((missing, ("is not a prelm run", "does not exist")),
                        (empty, ("is not a prelm run", "has no config.json")),
                        (untrained, ("has no checkpoint yet", "checkpoints"))):
    one_line_error(errors.PrelmError, lambda p=path: analysis.load_run(p), str(path),
                   *needles)
  one_line_error(errors.PrelmError, lambda: analysis.load_run(workdir, step=3),
                 str(workdir), "no checkpoint at step 3", "[2, 4]")


# --- fine-tuned runs ---------------------------------------------------------------------
WORDS = {"1": ["good", "great", "lovely"], "0": ["bad", "awful", "dull"]}
FILLER = ["the", "film", "was", "a", "story", "and", "plot", "really"]


def sentences(n, seed):
  rng = random.Random(seed)
  out = []
  for _ in range(n):
    label = rng.choice("01")
    words = rng.sample(FILLER, 4) + [rng.choice(WORDS[label])]
    rng.shuffle(words)
    out.append((" ".join(words), label))
  return out


def finetune(pretrained_dir, workdir, name, train_path, dev_path):
  """A 2-step fine-tuning run of experiment `name` from the pre-trained run."""
  config = registry.load(name)
  config.init_from = str(pretrained_dir)
  config.data.update(train_path=str(train_path), dev_path=str(dev_path), max_seq_len=32)
  config.train.update(num_epochs=0.0, num_steps=2, batch_size=16, eval_batch_size=16,
                      log_every=1, eval_every=2, checkpoint_every=2)
  train.run(config, str(workdir))
  return analysis.load_run(workdir, best=True)


def file_predictions(run, input_path, tmp_path):
  out = tmp_path / "predicted.tsv"
  predict.predict_file(run.workdir, str(input_path), str(out))
  return out.read_text().splitlines()


def test_a_classifier_labels_texts_as_prelm_predict_labels_a_file(pretrained, tmp_path,
                                                                  one_line_error):
  table = lambda rows: "sentence\tlabel\n" + "".join(f"{t}\t{l}\n" for t, l in rows)
  (tmp_path / "train.tsv").write_text(table(sentences(64, 0)))
  (tmp_path / "dev.tsv").write_text(table(sentences(16, 1)))
  run = finetune(pretrained[0], tmp_path / "sst", "sst2", tmp_path / "train.tsv",
                 tmp_path / "dev.tsv")
  assert run.task.name == "classify" and run.metrics.split.isin(["eval"]).any()
  texts = [t for t, _ in sentences(20, 2)]
  labels = run.predict(texts, batch_size=8)  # three batches, the last one padded
  assert len(labels) == 20 and set(labels) <= {"0", "1"}
  (tmp_path / "input.tsv").write_text(table((t, "") for t in texts))
  rows = file_predictions(run, tmp_path / "input.tsv", tmp_path)[1:]
  assert [r.split("\t")[-1] for r in rows] == labels
  assert run.predict("a single text") == run.predict(["a single text"])
  assert run.predict([]) == []
  one_line_error(errors.PrelmError, lambda: run.predict([("a", "b")]),
                 "classifies strings", "sentence_pair=False")
  one_line_error(errors.PrelmError, lambda: run.fill_mask("the [MASK] film"),
                 "'classify' run", "no MLM head")
  assert run.encode(texts[:2]).pooled.shape == (2, 32)  # any run's encoder


def test_a_pair_regression_scores_pairs(pretrained, tmp_path, one_line_error):
  def table(n, seed):
    rng = random.Random(seed)
    rows = ["sentence1\tsentence2\tscore"]
    for a, _ in sentences(n, seed):
      rows.append(f"{a}\t{' '.join(rng.sample(FILLER, 3))}\t{rng.uniform(0, 5):.2f}")
    return "\n".join(rows) + "\n"
  (tmp_path / "train.tsv").write_text(table(64, 0))
  (tmp_path / "dev.tsv").write_text(table(16, 1))
  run = finetune(pretrained[0], tmp_path / "stsb", "stsb", tmp_path / "train.tsv",
                 tmp_path / "dev.tsv")
  pairs = [("the film was good", "a story and plot"), ("bad plot", "the film")]
  scores = run.predict(pairs)
  assert len(scores) == 2 and all(isinstance(s, float) for s in scores)
  (tmp_path / "input.tsv").write_text(
      "sentence1\tsentence2\n" + "".join(f"{a}\t{b}\n" for a, b in pairs))
  rows = file_predictions(run, tmp_path / "input.tsv", tmp_path)[1:]
  assert [r.split("\t")[-1] for r in rows] == [f"{s:.4f}" for s in scores]
  one_line_error(errors.PrelmError, lambda: run.predict(["one text"]),
                 "classifies (a, b) pairs of strings")


def test_a_tagger_tags_each_word(pretrained, tmp_path):
  def conll(n, seed):
    rng = random.Random(seed)
    lines = []
    for _ in range(n):
      for _ in range(rng.randint(3, 6)):
        if rng.random() < 0.3:
          lines.append(f"{rng.choice(['John', 'Mary', 'Anna'])} NN O B-PER")
        else:
          lines.append(f"{rng.choice(FILLER)} NN O O")
      lines.append("")
    return "\n".join(lines) + "\n"
  (tmp_path / "train.conll").write_text(conll(64, 0))
  (tmp_path / "dev.conll").write_text(conll(16, 1))
  run = finetune(pretrained[0], tmp_path / "ner", "conll2003_ner",
                 tmp_path / "train.conll", tmp_path / "dev.conll")
  texts = ["John saw the film", "Mary and Anna"]
  tagged = run.predict(texts)
  assert [[w for w, _ in s] for s in tagged] == [t.split() for t in texts]
  assert all(tag in ("O", "B-PER") for s in tagged for _, tag in s)
  [words] = run.predict([["John", "saw"]])  # lists of words work too
  assert [w for w, _ in words] == ["John", "saw"]
  (tmp_path / "input.conll").write_text(
      "".join("".join(f"{w} NN O O\n" for w in t.split()) + "\n" for t in texts))
  rows = [r for r in file_predictions(run, tmp_path / "input.conll", tmp_path)[1:] if r]
  assert [r.split("\t")[-1] for r in rows] == [tag for s in tagged for _, tag in s]
