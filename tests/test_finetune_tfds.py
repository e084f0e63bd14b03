"""Fine-tuning data from TFDS by name (`tfds:NAME:SPLIT`), on really prepared datasets.

No network: the module fixture prepares glue/sst2, rte, mrpc, stsb and conll2003
in a temporary data_dir with the TFDS catalogue's own builders (their features, config
names and versions), subclassed unregistered only to generate a few hand-written
examples instead of downloading; `download_and_prepare` writes the real dataset_info.json
and ArrayRecord files. prelm then reads them through the ordinary
`tfds.builder("glue/sst2", data_dir=...)`, i.e. the catalogue's classes.
"""
import importlib.util
import json
import pathlib
import random
import re
import shutil

import pytest
import tensorflow_datasets as tfds
from tensorflow_datasets.text import glue
from tensorflow_datasets.text.conll2003 import conll2003

from prelm_jax import errors
from prelm_jax import predict
from prelm_jax import registry
from prelm_jax import tasks
from prelm_jax import train
from prelm_jax import validation
from prelm_jax.data import finetune_labels
from prelm_jax.data import finetune_tfds

GOOD = ["good", "great", "lovely", "fine", "superb", "charming"]
BAD = ["bad", "awful", "dull", "poor", "weak", "boring"]
FILLER = ["the", "film", "was", "a", "story", "and", "acting", "plot", "really", "quite"]
SPLIT_SIZES = {"train": 64, "validation": 16, "test": 4}


def sentiment(split, i):
  """(sentence, label id): 1 (positive) when the sentence holds a GOOD word."""
  rng = random.Random(f"{split}{i}")
  label = int(rng.random() < 0.5)
  words = rng.sample(FILLER, 4) + [rng.choice(GOOD if label else BAD)]
  rng.shuffle(words)
  return " ".join(words), label


def glue_example(config, split, i):
  """One example with glue/<config>'s features; test splits unlabelled (-1) as GLUE's."""
  text, label = sentiment(split, i)
  if config == "sst2":
    example = {"sentence": text, "label": label}
  elif config in ("rte", "mrpc"):
    example = {"sentence1": text, "sentence2": f"hypothesis {i}", "label": label}
  else:  # stsb: a score in [0, 5]
    example = {"sentence1": text, "sentence2": f"other {i}", "label": i % 6 * 1.0}
  if split == "test":
    example["label"] = -1
  return {**example, "idx": i}


PEOPLE = [["John"], ["Mary", "Smith"]]
PLACES = [["Paris"], ["New", "York"]]


def ner_sentence(split, i):
  """(tokens, pos, chunks, ner): a person or a place among filler words; IOB2 tags."""
  rng = random.Random(f"ner{split}{i}")
  tokens, ner = [], []
  for _ in range(rng.randint(3, 6)):
    kind = rng.random()
    if kind < 0.4:
      tag = "PER" if kind < 0.2 else "LOC"
      name = rng.choice(PEOPLE if tag == "PER" else PLACES)
      tokens += name
      ner += [f"B-{tag}"] + [f"I-{tag}"] * (len(name) - 1)
    else:
      tokens.append(rng.choice(FILLER))
      ner.append("O")
  pos = ["NNP" if t != "O" else "NN" for t in ner]
  chunks = ["B-NP" if t[0] in "OB" else "I-NP" for t in ner]
  return tokens, pos, chunks, ner


with tfds.core.registered.skip_registration():

  class HandWrittenGlue(glue.Glue):
    """The catalogue's GLUE builder with hand-written splits instead of a download."""
    name = "glue"

    def _split_generators(self, dl_manager):
      del dl_manager
      return {split: self._examples(split) for split in SPLIT_SIZES}

    def _examples(self, split):  # pylint: disable=arguments-renamed
      for i in range(SPLIT_SIZES[split]):
        yield i, glue_example(self.builder_config.name, split, i)

  class HandWrittenConll2003(conll2003.Conll2003):
    """The catalogue's CoNLL-2003 builder with hand-written sentences."""
    name = "conll2003"
    # Its README/citations are read from the package of the class: the real one's.
    pkg_dir_path = conll2003.Conll2003._get_pkg_dir_path()  # pylint: disable=protected-access

    def _split_generators(self, dl_manager):
      del dl_manager
      return {"train": self._examples("train", 32), "dev": self._examples("dev", 8)}

    def _examples(self, split, n):  # pylint: disable=arguments-differ
      for i in range(n):
        tokens, pos, chunks, ner = ner_sentence(split, i)
        yield i, {"tokens": tokens, "pos": pos, "chunks": chunks, "ner": ner}
      # As TFDS's CoNLL builder does after a file that ends in a blank line.
      yield n, {"tokens": [], "pos": [], "chunks": [], "ner": []}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  """A TFDS data_dir with glue/sst2, rte, mrpc and stsb and conll2003 prepared."""
  path = str(tmp_path_factory.mktemp("tensorflow_datasets"))
  tfds.disable_progress_bar()
  for builder in [HandWrittenGlue(config=c, data_dir=path, file_format="array_record")
                  for c in ("sst2", "rte", "mrpc", "stsb")] + [
                      HandWrittenConll2003(data_dir=path, file_format="array_record")]:
    builder.download_and_prepare()
  return path


def test_reads_glue_classes_as_names_pairs_scores_and_unlabelled_tests(data_dir):
  read = lambda source, columns, **kw: finetune_tfds.read_examples(
      source, text_columns=columns, data_dir=data_dir, **kw)
  train = read("tfds:glue/sst2:train", ["sentence"], label_column="label")
  assert [e.line for e in train] == list(range(1, 65))
  expected = {sentiment("train", i)[0]: ("negative", "positive")[sentiment("train", i)[1]]
              for i in range(64)}
  assert {e.texts[0]: e.label for e in train} == expected  # ClassLabel ids -> names
  assert len(read("tfds:glue/sst2:train[:10]", ["sentence"], label_column="label")) == 10
  # GLUE's test splits are unlabelled (-1): read without a label, or kept as None...
  test = read("tfds:glue/sst2:test", ["sentence"], label_column=None)
  assert len(test) == 4 and {e.label for e in test} == {None}
  test = read("tfds:glue/sst2:test", ["sentence"], label_column="label",
              allow_unlabelled=True)
  assert {e.label for e in test} == {None}
  rte = read("tfds:glue/rte:validation", ["sentence1", "sentence2"], label_column="label")
  assert {e.label for e in rte} == {"entailment", "not_entailment"}
  assert {e.texts for e in rte} == {(sentiment("validation", i)[0], f"hypothesis {i}")
                                    for i in range(16)}
  stsb = read("tfds:glue/stsb:validation", ["sentence1", "sentence2"],
              label_column="label", regression=True)
  assert sorted(e.label for e in stsb) == sorted(i % 6 * 1.0 for i in range(16))
  stsb_test = read("tfds:glue/stsb:test", ["sentence1", "sentence2"],
                   label_column="label", regression=True, allow_unlabelled=True)
  assert {e.label for e in stsb_test} == {None}  # all -1: a split without scores
  # The catalogue's own class, not the test's builder, reads them.
  assert type(tfds.builder("glue/sst2", data_dir=data_dir)) is glue.Glue


def test_label_ids_follow_the_class_label_so_f1_counts_glues_positive_class(data_dir):
  config = registry.load("rte")
  config.data.update(tfds_data_dir=data_dir, train_path="tfds:glue/mrpc:train",
                     dev_path="tfds:glue/mrpc:validation")
  task = tasks.get(config)
  train, dev = task.read(config.data.train_path), task.read(config.data.dev_path)
  # Sorted, "equivalent" would be id 0 and F1 would count "not_equivalent".
  assert task.label_list(train, {"dev": dev}) == ["not_equivalent", "equivalent"]


def test_reads_conll2003_tags_by_feature_or_column_and_iob1_leaves_them(data_dir):
  dev = finetune_tfds.read_tagged("tfds:conll2003:dev", data_dir=data_dir)
  expected = {tuple(ner_sentence("dev", i)[0]): ner_sentence("dev", i)[3] for i in range(8)}
  assert len(dev) == 8  # the empty example is dropped
  assert {tuple(s.words): s.tags for s in dev} == expected
  pos = finetune_tfds.read_tagged("tfds:conll2003:dev", tag_column="pos", data_dir=data_dir)
  assert {tuple(s.words): s.tags for s in pos} == {
      tuple(ner_sentence("dev", i)[0]): ner_sentence("dev", i)[1] for i in range(8)}
  # conll2003_ner (a file's last column, iob1 converted to iob2) reads the NER tags of
  # TFDS's conll2003, which are IOB2 already and come through unchanged.
  config = registry.load("conll2003_ner")
  config.data.tfds_data_dir = data_dir
  assert (config.data.tag_column, config.data.tag_scheme) == ("-1", "iob1")
  sentences = tasks.get(config).read("tfds:conll2003:dev")
  assert {tuple(s.words): s.tags for s in sentences} == expected
  assert any("I-PER" in s.tags or "I-LOC" in s.tags for s in sentences)


def test_finetuning_from_tfds_and_a_file_mixed(data_dir, tmp_path, read_metrics):
  """sst2 from scratch: train from tfds:glue/sst2, dev from a TSV with the class names."""
  dev = tmp_path / "dev.tsv"
  dev.write_text("sentence\tlabel\n" + "".join(
      f"{s}\t{('negative', 'positive')[y]}\n" for s, y in map(
          lambda i: sentiment("dev", i), range(16))))
  config = registry.load("sst2")
  config.model.update(num_layers=1, hidden_size=32, num_heads=2, mlp_dim=64,
                      max_position_embeddings=64)
  config.data.update(tfds_data_dir=data_dir, train_path="tfds:glue/sst2:train",
                     dev_path=str(dev), vocab_size=600, max_seq_len=32)
  config.train.update(num_epochs=0.0, num_steps=4, batch_size=16, eval_batch_size=16,
                      log_every=2, eval_every=4, checkpoint_every=4)
  result = train.run(config, str(tmp_path / "run"))
  assert result.final_metrics["step"] == 4 and "accuracy" in result.final_metrics
  assert (tmp_path / "run" / "labels.txt").read_text() == "negative\npositive\n"
  rows = (tmp_path / "run" / "predictions_dev.tsv").read_text().splitlines()
  assert len(rows) == 17 and {r.split("\t")[-1] for r in rows[1:]} <= {"negative",
                                                                         "positive"}
  assert [r["step"] for r in read_metrics(tmp_path / "run", "eval")] == [4]


def test_conll2003_ner_experiment_on_tfds(data_dir, tmp_path):
  config = registry.load("conll2003_ner")
  config.model.update(num_layers=1, hidden_size=32, num_heads=2, mlp_dim=64,
                      max_position_embeddings=64)
  config.data.update(tfds_data_dir=data_dir, train_path="tfds:conll2003:train",
                     dev_path="tfds:conll2003:dev", vocab_size=600, max_seq_len=32)
  config.train.update(num_epochs=0.0, num_steps=2, batch_size=16, eval_batch_size=16,
                      log_every=1, eval_every=2, checkpoint_every=2)
  final = train.run(config, str(tmp_path / "run")).final_metrics
  assert {"entity_f1", "token_accuracy"} <= set(final)
  labels = (tmp_path / "run" / "labels.txt").read_text().split()
  assert {"B-PER", "I-PER", "B-LOC", "I-LOC", "O"} <= set(labels)
  words = [r for r in (tmp_path / "run" / "predictions_dev.tsv").read_text().split("\n")[1:]
           if r]
  assert len(words) == sum(len(ner_sentence("dev", i)[0]) for i in range(8))


def test_tfds_mistakes_are_one_line(data_dir, tmp_path, one_line_error):
  read = lambda source, columns=("sentence",), **kw: finetune_tfds.read_examples(
      source, text_columns=columns, label_column=kw.pop("label", "label"),
      data_dir=kw.pop("data_dir", data_dir), **kw)
  one_line_error(errors.DataError, lambda: read("tfds:glue/sst2:dev"),
                 "tfds:glue/sst2:dev: glue/sst2 has no split 'dev'; it has ['train', "
                 "'validation', 'test']")
  one_line_error(errors.DataError, lambda: read("tfds:glue/rte:train"),
                 "tfds:glue/rte:train has no feature 'sentence' (its features: "
                 "['sentence1', 'sentence2', 'label', 'idx'])")
  one_line_error(errors.DataError, lambda: read("tfds:glue/sst2:test"),
                 "tfds:glue/sst2:test example 1 has no label")
  one_line_error(errors.DataError, lambda: read("tfds:glue/stsb:train", ["sentence1",
                                                                        "sentence2"]),
                 "'label' is a float32 score, not a class; set "
                 "--config.data.regression=True")
  one_line_error(errors.DataError, lambda: read("tfds:glue/sst3:train"),
                 "glue has no config 'sst3'; it has ['cola', 'sst2'")
  one_line_error(errors.DataError, lambda: read("tfds:no_such_set:train"),
                 "TFDS knows no dataset 'no_such_set'")
  # Not prepared: never downloaded, the fix named.
  one_line_error(errors.DataError, lambda: read("tfds:glue/qnli:train"),
                 f"glue/qnli is not prepared in {data_dir}",
                 f"tfds build glue/qnli --data_dir {data_dir} --file_format=array_record",
                 "--config.data.tfds_data_dir")
  assert not list((pathlib.Path(data_dir) / "glue").glob("qnli/*/dataset_info.json"))
  one_line_error(errors.DataError, lambda: finetune_tfds.read_tagged(
      "tfds:glue/sst2:train", data_dir=data_dir), "has no 'tokens' feature of words")
  one_line_error(errors.ConfigError, lambda: finetune_tfds.read_tagged(
      "tfds:conll2003:dev", tag_column="7", data_dir=data_dir),
                 "config.data.tag_column='7' names no tag column of tfds:conll2003:dev "
                 "(its columns: ['tokens', 'pos', 'chunks', 'ner'])")
  # A label outside the list is named by split and example, not by file line.
  train = read("tfds:glue/sst2:train")
  message = one_line_error(errors.DataError, lambda: finetune_labels.label_vocabulary(
      train, path="tfds:glue/sst2:train", configured=["negative"]),
                           "label 'positive' in tfds:glue/sst2:train (example ")
  line = int(re.search(r"\(example (\d+)\)", message).group(1))
  assert train[line - 1].label == "positive"
  # The form is checked before anything runs; predict takes files only.
  config = registry.load("sst2")
  config.data.update(train_path="tfds:glue/sst2", dev_path="tfds:glue/sst2:validation")
  one_line_error(errors.ConfigError, lambda: validation.check_finetune_data(config),
                 "config.data.train_path='tfds:glue/sst2' is not a TFDS dataset of the "
                 "form tfds:NAME:SPLIT", "--config.data.train_path=tfds:glue/sst2:train")
  one_line_error(errors.ConfigError, lambda: predict.predict_file(
      str(tmp_path), "tfds:glue/sst2:test", str(tmp_path / "out.tsv")),
                 "prelm predict labels a file, not a TFDS dataset")


@pytest.mark.skipif(importlib.util.find_spec("tensorflow") is not None,
                    reason="TensorFlow is installed: it reads tfrecord")
def test_tfrecord_without_tensorflow_is_one_line(data_dir, tmp_path, one_line_error):
  """A dataset prepared as tfrecord (`tfds build`'s default with TensorFlow): its
  dataset_info.json says so. TFDS cannot write tfrecord without TensorFlow, so the
  ArrayRecord one is relabelled: the refusal comes before any record file is opened."""
  shutil.copytree(f"{data_dir}/glue/sst2", tmp_path / "glue" / "sst2")
  info_path = next((tmp_path / "glue" / "sst2").glob("*/dataset_info.json"))
  info = json.loads(info_path.read_text())
  info["fileFormat"] = "tfrecord"
  info_path.write_text(json.dumps(info))
  one_line_error(errors.DataError, lambda: finetune_tfds.read_examples(
      "tfds:glue/sst2:train", text_columns=["sentence"], label_column="label",
      data_dir=str(tmp_path)),
                 f"glue/sst2 in {tmp_path} is prepared as tfrecord files, which only "
                 "TensorFlow reads, and TensorFlow is not installed",
                 "--file_format=array_record", "--config.data.tfds_data_dir=NEW_DIR")


def test_cli_refuses_an_unprepared_dataset_in_one_line(data_dir, tmp_path, prelm_cli):
  workdir = tmp_path / "w"
  proc = prelm_cli("train", "--config", "sst2", "--workdir", str(workdir),
                   f"--config.data.tfds_data_dir={data_dir}",
                   "--config.data.train_path=tfds:glue/cola:train",
                   "--config.data.dev_path=tfds:glue/cola:validation")
  assert proc.returncode == 2, proc.stderr[-3000:]
  lines = [l for l in proc.stderr.splitlines() if l.startswith("prelm: error:")]
  assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
  assert f"tfds:glue/cola:train: glue/cola is not prepared in {data_dir}" in lines[0]
  assert not workdir.exists()
