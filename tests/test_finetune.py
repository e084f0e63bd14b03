"""Fine-tuning through the one training loop: classification, regression and tagging,
started from a pre-trained run on any mesh, resumable, and refused in one line when the
input is wrong.

The core tests use small synthetic files (a sentiment-like TSV, CoNLL and CoNLL-U
tags) so they need nothing beside the repo; the ones on the real GLUE / CoNLL / UD
files in ../shared/data skip when those are absent.
"""
import json
import os
import pathlib
import random
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from prelm_jax import analysis
from prelm_jax import metrics
from prelm_jax import preemption
from prelm_jax import registry
from prelm_jax import train

REPO = pathlib.Path(__file__).resolve().parents[1]
GOOD = ["good", "great", "lovely", "fine", "superb", "charming"]
BAD = ["bad", "awful", "dull", "poor", "weak", "boring"]
FILLER = ["the", "film", "was", "a", "story", "and", "acting", "plot", "really", "quite"]


def write_sentiment(path, n, seed):
  """A TSV whose label (1/0) is whether the sentence has a GOOD or a BAD word."""
  rng = random.Random(seed)
  lines = ["sentence\tlabel"]
  for _ in range(n):
    label = rng.random() < 0.5
    words = rng.sample(FILLER, 5) + [rng.choice(GOOD if label else BAD)]
    rng.shuffle(words)
    lines.append(" ".join(words) + f"\t{int(label)}")
  path.write_text("\n".join(lines) + "\n")
  return path


@pytest.fixture(scope="module")
def sentiment(tmp_path_factory):
  d = tmp_path_factory.mktemp("sentiment")
  return write_sentiment(d / "train.tsv", 256, 0), write_sentiment(d / "dev.tsv", 48, 1)


@pytest.fixture(scope="module")
def pretrained(pydocs_data_dir, tmp_path_factory, tiny_config):
  """A tiny pre-training run on an 8-device fsdp mesh (checkpoint at step 4); 4 heads,
  so that fine-tuning can split them over tensor=4."""
  workdir = tmp_path_factory.mktemp("pretrained")
  config = tiny_config(pydocs_data_dir, num_steps=4, checkpoint_every=4)
  config.model.num_heads = 4
  config.mesh.update(data=1, fsdp=8)
  train.run(config, str(workdir))
  return workdir


def sst_config(init_from, train_path, dev_path, **train_overrides):
  config = registry.load("sst2")
  config.init_from = str(init_from)
  config.data.update(train_path=str(train_path), dev_path=str(dev_path), max_seq_len=32)
  # No dropout: runs on different meshes are compared value for value.
  config.model.update(dropout_rate=0.0, attention_dropout_rate=0.0)
  config.train.update(num_epochs=0.0, num_steps=6, batch_size=16, eval_batch_size=16,
                      log_every=1, eval_every=3, checkpoint_every=3)
  config.train.update(train_overrides)
  config.optim.update(learning_rate=1e-3, warmup_fraction=0.0, warmup_steps=1)
  return config


@pytest.fixture
def first_losses(read_metrics):
  return lambda workdir: [r["loss"] for r in read_metrics(workdir, "train")]


def test_classification_from_a_pretrained_run_on_any_mesh(pretrained, sentiment, tmp_path,
                                                           first_losses):
  train_path, dev_path = sentiment
  _, _, pre_params, _ = analysis.load_run(str(pretrained))
  losses = {}
  for name, mesh in (("data8", dict(data=-1)), ("data2_tensor4", dict(data=2, tensor=4))):
    config = sst_config(pretrained, train_path, dev_path)
    config.mesh.update(mesh)
    # Encoder architecture and vocabulary come from the pre-trained run.
    loaded = train.run(config, str(tmp_path / f"{name}_0"), stop_at=0)
    assert config.model.hidden_size == 32 and config.model.num_layers == 1
    jax.tree.map(np.testing.assert_array_equal, jax.device_get(pre_params["encoder"]),
                 jax.device_get(loaded.state.params["encoder"]))  # bit-equal
    result = train.run(config, str(tmp_path / name))
    losses[name] = first_losses(tmp_path / name)
    final = json.loads((tmp_path / name / "final_metrics.json").read_text())
    assert final["step"] == 6 and {"accuracy", "f1", "mcc", "loss"} <= set(final)
    assert final == result.final_metrics
  np.testing.assert_allclose(losses["data8"], losses["data2_tensor4"], rtol=0, atol=1e-5)
  # One device, in its own process: the same first losses.
  argv = [sys.executable, "-m", "prelm_jax.main", "train", "--config", "sst2",
          "--workdir", str(tmp_path / "one"), f"--config.init_from={pretrained}"] + [
      f"--config.{k}={v}" for k, v in {
          "data.train_path": train_path, "data.dev_path": dev_path, "data.max_seq_len": 32,
          "model.dropout_rate": 0.0, "model.attention_dropout_rate": 0.0,
          "train.num_epochs": 0.0, "train.num_steps": 6, "train.batch_size": 16,
          "train.eval_batch_size": 16, "train.log_every": 1, "train.eval_every": 3,
          "train.checkpoint_every": 3, "optim.learning_rate": 1e-3,
          "optim.warmup_fraction": 0.0, "optim.warmup_steps": 1}.items()]
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=1")
  proc = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert "1 cpu device" in proc.stdout
  np.testing.assert_allclose(first_losses(tmp_path / "one"), losses["data8"], rtol=0,
                             atol=1e-5)


def test_finetuning_outputs_best_params_predictions_and_predict(pretrained, sentiment,
                                                                tmp_path, read_metrics):
  train_path, dev_path = sentiment
  config = sst_config(pretrained, train_path, dev_path, num_epochs=2.0)
  config.optim.update(warmup_fraction=0.1)
  result = train.run(config, str(tmp_path / "run"))
  # Two epochs of 256 examples at batch 16, evaluated after each epoch.
  assert result.final_metrics["step"] == 32
  assert [r["step"] for r in read_metrics(tmp_path / "run", "eval")] == [16, 32]
  assert (tmp_path / "run" / "labels.txt").read_text() == "0\n1\n"
  assert (tmp_path / "run" / "vocab.txt").read_text() == (pretrained / "vocab.txt").read_text()
  best = [p.name for p in (tmp_path / "run" / "best").iterdir() if p.name.isdigit()]
  assert len(best) == 1 and best[0] in ("16", "32")
  rows = (tmp_path / "run" / "predictions_dev.tsv").read_text().splitlines()
  assert rows[0] == "line\tsentence\tlabel\tpredicted" and len(rows) == 49
  assert all(r.split("\t")[-1] in ("0", "1") for r in rows[1:])
  # prelm predict labels a file with the run.
  out = tmp_path / "labelled.tsv"
  proc = subprocess.run([sys.executable, "-m", "prelm_jax.main", "predict", "--workdir",
                         str(tmp_path / "run"), "--input", str(dev_path), "--output",
                         str(out)], cwd=REPO, capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert "Labelled 48 examples" in proc.stdout
  assert len(out.read_text().splitlines()) == 49
  # ...and refuses a pre-training run in one line.
  proc = subprocess.run([sys.executable, "-m", "prelm_jax.main", "predict", "--workdir",
                         str(pretrained), "--input", str(dev_path), "--output",
                         str(tmp_path / "x.tsv")], cwd=REPO, capture_output=True,
                        text=True, timeout=300)
  assert proc.returncode == 2 and "is a 'pretrain' run; prelm predict needs a fine-tuned" \
      in proc.stderr, proc.stderr[-2000:]
  assert not (tmp_path / "x.tsv").exists()


def test_test_set_is_scored_once_with_the_best_dev_params(pretrained, sentiment, tmp_path,
                                                         read_metrics):
  train_path, dev_path = sentiment
  test_path = write_sentiment(tmp_path / "test.tsv", 40, 2)
  config = sst_config(pretrained, train_path, dev_path, num_epochs=3.0)
  config.data.update(test_path=str(test_path), train_examples=64)
  result = train.run(config, str(tmp_path / "run"))
  # 64 of the 256 training examples: 4 steps an epoch, dev after each.
  evals = read_metrics(tmp_path / "run", "eval")
  assert [r["step"] for r in evals] == [4, 8, 12]
  test = result.final_metrics["test"]
  best_accuracy = max(r["accuracy"] for r in evals)
  assert test["step"] in [r["step"] for r in evals if r["accuracy"] == best_accuracy]
  assert read_metrics(tmp_path / "run", "test") == [
      {"step": 12, "split": "test", **{k: v for k, v in test.items() if k != "step"}}]
  rows = [r.split("\t") for r in
          (tmp_path / "run" / "predictions_test.tsv").read_text().splitlines()[1:]]
  assert len(rows) == 40
  assert test["accuracy"] == pytest.approx(np.mean([r[-2] == r[-1] for r in rows]))
  assert json.loads((tmp_path / "run" / "final_metrics.json").read_text())["test"] == test


def test_train_subset_is_the_same_for_every_run_seed(pretrained, sentiment):
  from prelm_jax import tasks  # pylint: disable=g-import-not-at-top
  train_path, dev_path = sentiment
  def subset(**overrides):
    config = sst_config(pretrained, train_path, dev_path)
    config.data.train_examples = 100
    config.update(overrides.pop("top", {}))
    config.data.update(overrides)
    task = tasks.get(config)
    records = task.read(str(train_path))
    return [r.line for r in task._subset(records)]  # pylint: disable=protected-access
  lines = subset()
  assert len(lines) == len(set(lines)) == 100 and lines == sorted(lines)
  assert subset(top={"seed": 7}) == lines
  assert subset(train_subset_seed=1) != lines


def test_finetuning_resume_equals_uninterrupted_run(pretrained, sentiment, tmp_path,
                                                    read_metrics):
  train_path, dev_path = sentiment
  config = sst_config(pretrained, train_path, dev_path)
  config.model.dropout_rate = 0.1  # dropout too: its keys are a function of the step
  straight = train.run(config, str(tmp_path / "straight"))
  first = train.run(config, str(tmp_path / "resumed"), stop_at=3)
  assert first.final_metrics is None
  resumed = train.run(config, str(tmp_path / "resumed"))
  untimed = lambda w: [metrics.untimed(r) for r in read_metrics(w, "train")]
  assert untimed(tmp_path / "resumed") == untimed(tmp_path / "straight")
  jax.tree.map(np.testing.assert_array_equal, jax.device_get(straight.state.params),
               jax.device_get(resumed.state.params))
  assert resumed.final_metrics == straight.final_metrics


def write_conll(path, sentences, iob1=True):
  lines = ["-DOCSTART- -X- O O", ""]
  for words, tags in sentences:
    lines += [f"{w} NN O {t}" for w, t in zip(words, tags)] + [""]
  path.write_text("\n".join(lines) + "\n")
  return path


def ner_sentences(n, seed):
  rng = random.Random(seed)
  people, places = ["John", "Mary", "Smith", "Anna"], ["Paris", "Berlin", "Rome"]
  out = []
  for _ in range(n):
    words, tags = [], []
    for _ in range(rng.randint(3, 8)):
      kind = rng.random()
      if kind < 0.2:
        words.append(rng.choice(people)); tags.append("I-PER")
      elif kind < 0.35:
        words.append(rng.choice(places)); tags.append("I-LOC")
      else:
        words.append(rng.choice(FILLER)); tags.append("O")
    out.append((words, tags))
  return out


def test_tagging_with_iob1_conll_files(pretrained, tmp_path):
  train_path = write_conll(tmp_path / "train.conll", ner_sentences(128, 0))
  dev_path = write_conll(tmp_path / "dev.conll", ner_sentences(24, 1))
  config = registry.load("conll2003_ner")
  config.init_from = str(pretrained)
  config.data.update(train_path=str(train_path), dev_path=str(dev_path), max_seq_len=32)
  config.train.update(num_epochs=4.0, batch_size=16, eval_batch_size=16, log_every=4)
  config.optim.update(learning_rate=3e-3)
  result = train.run(config, str(tmp_path / "run"))
  final = result.final_metrics
  assert {"entity_f1", "entity_precision", "entity_recall", "token_accuracy"} <= set(final)
  assert final["token_accuracy"] > 0.6, final
  # IOB1 was converted: a lone I-PER became B-PER.
  labels = (tmp_path / "run" / "labels.txt").read_text().split()
  assert "B-PER" in labels and "B-LOC" in labels
  rows = [r for r in (tmp_path / "run" / "predictions_dev.tsv").read_text().split("\n")[1:]
          if r]
  assert len(rows) == sum(len(w) for w, _ in ner_sentences(24, 1))


def finetune_cli(pretrained, workdir, config_name, **overrides):
  settings = {"data.max_seq_len": 32, "train.num_epochs": 0.0, "train.num_steps": 2,
              "train.batch_size": 16, "train.eval_batch_size": 16, **overrides}
  argv = [sys.executable, "-m", "prelm_jax.main", "train", "--config", config_name,
          "--workdir", str(workdir)]
  if pretrained is not None:
    argv.append(f"--config.init_from={pretrained}")
  return argv + [f"--config.{k}={v}" for k, v in settings.items()]


def assert_one_line(proc, pattern):
  import re  # pylint: disable=g-import-not-at-top
  assert proc.returncode == 2, proc.stderr[-3000:]
  lines = [l for l in proc.stderr.splitlines() if l.startswith("prelm: error:")]
  assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
  assert re.search(pattern, lines[0]), lines[0]


def test_bad_finetuning_input_is_one_line_and_writes_nothing(pretrained, sentiment,
                                                             tmp_path, run_prelm,
                                                             tree_digest):
  train_path, dev_path = sentiment
  unseen = tmp_path / "unseen.tsv"
  unseen.write_text(dev_path.read_text() + "an odd one\t2\n")
  no_label = tmp_path / "nolabel.tsv"
  no_label.write_text("sentence\tscore\nfine\t1\n")
  comma = tmp_path / "comma.tsv"
  comma.write_text("sentence,label\nfine,1\n")
  empty = tmp_path / "empty.tsv"
  empty.write_text("")
  bad_conll = tmp_path / "bad.conll"
  bad_conll.write_text("-DOCSTART- -X- O O\n\nJohn NN O I-PER\nruns NN O\n")
  not_a_run = tmp_path / "not_a_run"
  not_a_run.mkdir()
  no_ckpt = tmp_path / "no_ckpt"
  no_ckpt.mkdir()
  (no_ckpt / "config.json").write_text((pretrained / "config.json").read_text())
  ok = {"data.train_path": train_path, "data.dev_path": dev_path}
  cases = [
      ("sst2", pretrained, dict(ok, **{"data.dev_path": unseen}),
       r"label '2' in .*unseen.tsv \(line 50\) is not among the training labels \['0', '1'\]"),
      ("sst2", pretrained, dict(ok, **{"data.train_path": no_label}),
       r"nolabel.tsv.*label"),
      ("sst2", pretrained, dict(ok, **{"data.train_path": comma}), r"comma.tsv.*delimiter"),
      ("sst2", pretrained, dict(ok, **{"data.train_path": empty}), r"empty.tsv.*empty"),
      ("conll2003_ner", pretrained, {"data.train_path": bad_conll,
                                     "data.dev_path": bad_conll}, r"bad.conll.*line 4"),
      ("sst2", not_a_run, ok, r"config.init_from=.*not_a_run' is not a prelm run"),
      ("sst2", no_ckpt, ok, r"config.init_from=.*no_ckpt' has no checkpoint"),
      ("sst2", pretrained, dict(ok, **{"model.hidden_size": 64}),
       r"config.model.hidden_size=64 conflicts with the pre-trained run's 32"),
      ("sst2", pretrained, dict(ok, **{"data.vocab_size": 1234}),
       r"config.data.vocab_size=1234 conflicts with the pre-trained run's"),
      # The run's vocab.txt was trained uncased: a cased fine-tuning run would split
      # text into other pieces than the encoder learned.
      ("sst2", pretrained, dict(ok, **{"data.lowercase": False}),
       r"config.data.lowercase=False conflicts with the pre-trained run's True"),
      ("sst2", pretrained, {"data.dev_path": dev_path},
       r"config.data.train_path is not set: pass --config.data.train_path=FILE"),
      ("sst2", pretrained, dict(ok, **{"data.test_path": unseen}),
       r"label '2' in .*unseen.tsv \(line 50\) is not among the training labels"),
      ("sst2", pretrained, dict(ok, **{"data.train_examples": 1000}),
       r"config.data.train_examples=1000 exceeds the 256 examples of .*train.tsv"),
      ("rte", pretrained, dict(ok, **{"data.text_columns": "('sentence',)"}),
       r"config.data.text_columns: a pair task reads 2 text column\(s\), got 1"),
  ]
  before = tree_digest(pretrained)
  for i, (name, init, overrides, message) in enumerate(cases):
    workdir = tmp_path / f"w{i}"
    proc = run_prelm(finetune_cli(init, workdir, name, **overrides))
    assert_one_line(proc, message)
    assert not workdir.exists(), (message, list(workdir.rglob("*")))
  assert tree_digest(pretrained) == before


@pytest.mark.faults
def test_sigterm_during_finetuning_saves_and_resumes(pretrained, sentiment, tmp_path,
                                                     run_prelm):
  train_path, dev_path = sentiment
  argv = finetune_cli(pretrained, tmp_path / "w", "sst2", **{
      "data.train_path": train_path, "data.dev_path": dev_path, "train.num_steps": 100000,
      "train.log_every": 1, "train.checkpoint_every": 100000})
  log_path = tmp_path / "log"
  with open(log_path, "w") as log:
    proc = subprocess.Popen(argv, cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
                            env=dict(os.environ, PYTHONUNBUFFERED="1"))
  metrics = tmp_path / "w" / "metrics.jsonl"
  deadline = time.time() + 240
  while not metrics.exists() or len(metrics.read_text().splitlines()) < 3:
    assert proc.poll() is None and time.time() < deadline, log_path.read_text()[-3000:]
    time.sleep(0.05)
  proc.send_signal(signal.SIGTERM)
  assert proc.wait(timeout=120) == preemption.PREEMPTED_EXIT_CODE, log_path.read_text()
  steps = sorted(int(p.name) for p in (tmp_path / "w" / "checkpoints").iterdir()
                 if p.name.isdigit())
  assert len(steps) == 1
  proc = run_prelm(finetune_cli(pretrained, tmp_path / "w", "sst2", **{
      "data.train_path": train_path, "data.dev_path": dev_path,
      "train.num_steps": steps[0] + 2, "train.log_every": 1,
      "train.checkpoint_every": 100000}))
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert f"Resuming from the checkpoint at step {steps[0]}" in proc.stdout


def head(path, lines, out):
  """The first `lines` lines of `path`, written to `out`."""
  with open(path, encoding="utf-8") as f:
    out.write_text("".join(l for _, l in zip(range(lines), f)))
  return out


def test_real_files_regression_and_pos(pretrained, tmp_path, shared_file):
  """STS-B (regression) and UD GUM (UPOS, CoNLL-U) heads of the real files."""
  stsb_train = head(shared_file("stsb", "train.tsv"), 161, tmp_path / "stsb_train.tsv")
  stsb_dev = head(shared_file("stsb", "dev.tsv"), 49, tmp_path / "stsb_dev.tsv")
  config = registry.load("stsb")
  config.init_from = str(pretrained)
  config.data.update(train_path=str(stsb_train), dev_path=str(stsb_dev), max_seq_len=48)
  config.train.update(num_epochs=1.0, batch_size=16, eval_batch_size=16)
  final = train.run(config, str(tmp_path / "stsb")).final_metrics
  assert {"pearson", "spearman", "mse"} <= set(final) and np.isfinite(final["pearson"])

  gum_train = head(shared_file("ud-english-gum", "en_gum-ud-train.conllu"), 2000,
                   tmp_path / "gum_train.conllu")
  gum_dev = head(shared_file("ud-english-gum", "en_gum-ud-dev.conllu"), 600,
                 tmp_path / "gum_dev.conllu")
  config = registry.load("ud_pos")
  config.init_from = str(pretrained)
  config.data.update(train_path=str(gum_train), dev_path=str(gum_dev), max_seq_len=64)
  config.train.update(num_epochs=1.0, batch_size=16, eval_batch_size=16)
  final = train.run(config, str(tmp_path / "pos")).final_metrics
  assert "token_accuracy" in final and "entity_f1" not in final
  assert "NOUN" in (tmp_path / "pos" / "labels.txt").read_text().split()


def test_finetuning_adopts_the_pretrained_mlp_activation(tmp_path):
  from prelm_jax.tasks import finetune  # pylint: disable=g-import-not-at-top
  saved = registry.load("base").to_dict()
  saved["model"]["mlp_activation"] = "geglu"
  (tmp_path / "config.json").write_text(json.dumps(saved, default=list))
  config = registry.load("sst2")
  config.init_from, config.init_params = str(tmp_path), False
  finetune.adopt_pretrained_architecture(config, registry.load("sst2"))
  assert config.model.mlp_activation == "geglu"
  # A run saved before the key existed is a gelu run.
  del saved["model"]["mlp_activation"]
  (tmp_path / "config.json").write_text(json.dumps(saved, default=list))
  config = registry.load("sst2")
  config.init_from, config.init_params = str(tmp_path), False
  finetune.adopt_pretrained_architecture(config, registry.load("sst2"))
  assert config.model.mlp_activation == "gelu"
