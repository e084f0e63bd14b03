"""Fine-tuning records from a prepared TFDS dataset: `tfds:NAME:SPLIT` in place of a file.

config.data.train_path / dev_path may name a dataset of the TFDS catalogue, e.g.
`tfds:glue/sst2:train`, `tfds:glue/rte:validation`, `tfds:conll2003:dev` (NAME with its
config, as the catalogue spells it; SPLIT may be sliced: `train[:1000]`). It is read
from config.data.tfds_data_dir, where it must be prepared already: a run never
downloads. Reading goes through `as_data_source()`, i.e. ArrayRecord files, without
TensorFlow. A dataset prepared as tfrecord (`tfds build`'s default) is read through
TensorFlow's `as_dataset()` where TensorFlow is installed, and refused in one line
where it is not.

The records are those the file readers return, so everything after reading is shared:
  classify: finetune_tables.Example; text columns and the label column are feature
    names (glue/sst2: sentence, label; glue/rte: sentence1, sentence2, label;
    glue/stsb: a float label). A ClassLabel label becomes its class name ("negative",
    "entailment"), so labels.txt and the predictions read as words, and the label
    list keeps the ClassLabel's order (class_names). -1 is TFDS's mark for a missing
    label (GLUE's test splits): such an example is unlabelled.
  tag: conll.TaggedSentence of the `tokens` feature and a sequence of tags
    (conll2003: pos, chunks or ner, ClassLabel names; its NER tags are IOB2).
A record's `line` is its 1-based position in the split (the data source's order);
messages call it "example N".
"""
import importlib.util

import numpy as np
import tensorflow_datasets as tfds
# The catalogue's text datasets (glue, conll2003, imdb_reviews, ...) register when their
# module is imported, which `import tensorflow_datasets` leaves to first use.
import tensorflow_datasets.text  # pylint: disable=unused-import

from prelm_jax import errors
from prelm_jax import library_logs
from prelm_jax.data import conll
from prelm_jax.data import finetune_sources
from prelm_jax.data import finetune_tables

WORDS_FEATURE = "tokens"     # conll2003's (and universal_dependencies') words
DEFAULT_TAG_FEATURE = "ner"  # tag_column "" on a TFDS dataset: conll2003's NER tags
MISSING_LABEL = -1           # TFDS's label for an unlabelled example


def prepare_hint(name, data_dir):
  """The commands that prepare `name` in `data_dir` as ArrayRecord (they download it)."""
  return (f"`tfds build {name} --data_dir {data_dir} --file_format=array_record` (the "
          "tfds command needs TensorFlow; without it: `python -c \"import "
          f"tensorflow_datasets as tfds; tfds.builder('{name}', data_dir='{data_dir}', "
          "file_format='array_record').download_and_prepare()\"`)")


def _builder(source, name, data_dir):
  """tfds.builder(name) on data_dir, or a one-line error for a name TFDS does not know."""
  try:
    return tfds.builder(name, data_dir=data_dir or None)
  except tfds.core.registered.DatasetNotFoundError:
    where = data_dir or "TFDS's default data_dir"
    raise errors.DataError(
        f"{source}: TFDS knows no dataset {name!r}, and none is prepared under that "
        f"name in {where}; spell NAME as the TFDS catalogue does (e.g. glue/sst2, "
        "conll2003), or point --config.data.tfds_data_dir at the folder where it is "
        "prepared") from None
  except ValueError as e:  # e.g. "BuilderConfig sst3 not found"
    base, _, config = name.partition("/")
    try:
      configs = list(tfds.builder_cls(base).builder_configs)
    except Exception:  # pylint: disable=broad-except
      configs = []
    if configs and config not in configs:
      raise errors.DataError(
          f"{source}: {base} has no config {config!r}; it has {configs}: pass e.g. "
          f"tfds:{base}/{configs[0]}:{source.rpartition(':')[2]}") from None
    raise errors.DataError(f"{source}: TFDS cannot open {name!r}: "
                           f"{str(e).splitlines()[0]}") from None


def _prepared(source, data_dir):
  """(builder, name, split, root) of a prepared dataset with the split `source` names."""
  name, split = finetune_sources.parse(source)
  builder = _builder(source, name, data_dir)
  root = str(builder.data_dir_root)
  with library_logs.quiet():  # is_prepared() warns that the folder has no dataset_info.json
    prepared = builder.is_prepared()
  if not prepared:
    raise errors.DataError(
        f"{source}: {name} is not prepared in {root} (a run never downloads); prepare it "
        f"there once, which downloads it: {prepare_hint(name, root)}; or point "
        "--config.data.tfds_data_dir at the folder where it is prepared")
  splits = list(builder.info.splits)
  if split.partition("[")[0] not in splits:
    raise errors.DataError(f"{source}: {name} has no split {split!r}; it has {splits}: "
                           f"pick one of those, e.g. tfds:{name}:{splits[0]}")
  return builder, name, split, root


def _records(source, data_dir):
  """(features, list of record dicts) of the split `source` names."""
  builder, name, split, root = _prepared(source, data_dir)
  try:
    data = builder.as_data_source(split=split)
    records = data.__getitems__(range(len(data))) if len(data) else []
  except NotImplementedError:  # no random-access format: tfrecord, TFDS's default
    records = _tfrecord_records(source, name, builder, split, root)
  except ValueError as e:  # a slice TFDS cannot parse, e.g. train[:x]
    raise errors.DataError(f"{source}: {str(e).splitlines()[0]}") from None
  if not records:
    raise errors.DataError(f"{source} has no examples: pick a split with data in it")
  return builder.info.features, records


def _tfrecord_records(source, name, builder, split, root):
  """The records of a tfrecord-prepared split, read with TensorFlow, if it is there."""
  if importlib.util.find_spec("tensorflow") is None:
    raise errors.DataError(
        f"{source}: {name} in {root} is prepared as {builder.info.file_format.value} "
        "files, which only TensorFlow reads, and TensorFlow is not installed; prepare "
        f"it again as ArrayRecord in another folder, {prepare_hint(name, 'NEW_DIR')}, "
        "and pass --config.data.tfds_data_dir=NEW_DIR (or install tensorflow)")
  return list(tfds.as_numpy(builder.as_dataset(split=split, shuffle_files=False)))


def _feature(source, features, name, what):
  if name not in features:
    raise errors.DataError(f"{source} has no feature {name!r} (its features: "
                           f"{list(features)}); set {what} to one of those")
  return features[name]


def _text(value):
  return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _is_number(feature):
  return (not isinstance(feature, (tfds.features.Text, tfds.features.ClassLabel))
          and getattr(feature, "shape", None) == ()
          and np.dtype(feature.np_dtype).kind in "iuf")


def _label_reader(source, feature, label_column, regression):
  """value -> label (str, float, or None for TFDS's missing label) for the feature."""
  what = "config.data.label_column"
  if isinstance(feature, tfds.features.ClassLabel):
    if regression:
      raise errors.DataError(
          f"{source}: {label_column!r} is a class label ({feature.names[:5]}), not a "
          "score; drop --config.data.regression=True, or name a numeric feature")
    return lambda v: None if int(v) == MISSING_LABEL else feature.int2str(int(v))
  if _is_number(feature):
    if regression:
      return float
    if np.dtype(feature.np_dtype).kind == "f":
      raise errors.DataError(
          f"{source}: {label_column!r} is a {np.dtype(feature.np_dtype).name} score, "
          "not a class; set --config.data.regression=True (as the stsb experiment does)")
    return lambda v: str(int(v))
  if isinstance(feature, tfds.features.Text) and not regression:
    return _text
  raise errors.DataError(f"{source}: {label_column!r} is a {type(feature).__name__} "
                         f"feature, which is not a {'score' if regression else 'label'}; "
                         f"set {what} to a {'numeric' if regression else 'class'} feature")


def class_names(source, *, label_column, data_dir=""):
  """The class names of a ClassLabel label feature, in id order; None for another kind.

  Classification takes these as its label list, so ids are the dataset's own (GLUE's:
  binary F1 counts class 1, e.g. MRPC's "equivalent", which sorting would make 0).
  """
  features = _prepared(source, data_dir)[0].info.features
  feature = _feature(source, features, label_column, "config.data.label_column")
  return list(feature.names) if isinstance(feature, tfds.features.ClassLabel) else None


def read_examples(source, *, text_columns, label_column, data_dir="", regression=False,
                  allow_unlabelled=False):
  """Reads a TFDS split into finetune_tables.Example records (as read_table does a file).

  Args:
    source: "tfds:NAME:SPLIT".
    text_columns: Text feature names: one, or two for a sentence pair.
    label_column: the label feature, or None to read without labels.
    data_dir: the TFDS data directory ("" for TFDS's default).
    regression: the label is a score (a float feature) instead of a class.
    allow_unlabelled: keep examples whose label is missing (label None); otherwise
      one is a one-line error.

  Returns:
    A list of Example in the data source's order; `line` is the 1-based position.

  Raises:
    errors.ConfigError: `source` is not tfds:NAME:SPLIT.
    errors.DataError: an unknown or unprepared dataset, an unknown split, a feature
      that is missing or of the wrong kind, an unlabelled example.
  """
  if isinstance(text_columns, str):
    raise TypeError(f"text_columns={text_columns!r}: pass a list of feature names")
  features, records = _records(source, data_dir)
  for column in text_columns:
    if not isinstance(_feature(source, features, column, "config.data.text_columns"),
                      tfds.features.Text):
      raise errors.DataError(
          f"{source}: {column!r} is a {type(features[column]).__name__} feature, not "
          "text; set config.data.text_columns to Text features (its features: "
          f"{list(features)})")
  label_of = None
  if label_column is not None:
    label_of = _label_reader(
        source, _feature(source, features, label_column, "config.data.label_column"),
        label_column, regression)
  examples = [finetune_tables.Example(
      tuple(_text(r[c]) for c in text_columns),
      None if label_of is None else label_of(r[label_column]), line)
              for line, r in enumerate(records, 1)]
  if regression and label_of is not None and all(
      e.label == MISSING_LABEL for e in examples):
    # A split whose scores are all -1 has none (GLUE's stsb test); -1 alone may be real.
    examples = [finetune_tables.Example(e.texts, None, e.line) for e in examples]
  unlabelled = next((e for e in examples if label_of is not None and e.label is None),
                    None)
  if unlabelled is not None and not allow_unlabelled:
    raise errors.DataError(
        f"{source} example {unlabelled.line} has no label ({label_column} is "
        f"{MISSING_LABEL}, TFDS's mark for a missing label, as in GLUE's test splits); "
        "train and evaluate on a labelled split, e.g. train or validation")
  return examples


def _tag_feature(source, features, tag_column):
  """The feature that holds the tags: tag_column by name, or by CoNLL column index."""
  words = features[WORDS_FEATURE] if WORDS_FEATURE in features else None
  if not isinstance(words, tfds.features.Sequence) or not isinstance(
      words.feature, tfds.features.Text):
    raise errors.DataError(
        f"{source} has no {WORDS_FEATURE!r} feature of words (its features: "
        f"{list(features)}), so it cannot be tagged; name a tagging dataset, e.g. "
        "tfds:conll2003:train")
  column = tag_column or DEFAULT_TAG_FEATURE
  if column.lstrip("-").isdigit():
    # A CoNLL column index (conll2003_ner's -1): the dataset's sequence features in
    # order are the file's columns, tokens first (conll2003: tokens pos chunks ner).
    columns = [n for n, f in features.items() if isinstance(f, tfds.features.Sequence)]
    index = int(column)
    if columns[0] != WORDS_FEATURE or not -len(columns) <= index < len(columns) or (
        index % len(columns) == 0):
      raise errors.ConfigError(
          f"config.data.tag_column={tag_column!r} names no tag column of {source} (its "
          f"columns: {columns}); name the feature instead, e.g. "
          f"--config.data.tag_column={DEFAULT_TAG_FEATURE}")
    column = columns[index]
  feature = _feature(source, features, column, "config.data.tag_column")
  if not isinstance(feature, tfds.features.Sequence) or column == WORDS_FEATURE:
    raise errors.DataError(f"{source}: {column!r} is not a sequence of tags (its "
                           f"features: {list(features)}); set config.data.tag_column to "
                           "one, e.g. ner")
  return column, feature.feature


def read_tagged(source, *, tag_column="", data_dir=""):
  """Reads a TFDS split into conll.TaggedSentence records (as read_conll does a file).

  Args:
    source: "tfds:NAME:SPLIT", a dataset with a `tokens` feature (conll2003).
    tag_column: the feature of tags ("" = "ner"), or a CoNLL column index ("-1": the
      last sequence feature, conll2003's ner).
    data_dir: the TFDS data directory ("" for TFDS's default).

  Returns:
    A list of TaggedSentence in the data source's order (examples without words, which
    TFDS's CoNLL builder writes after a file's last blank line, are dropped); `line`
    is the 1-based position in the split.

  Raises:
    errors.ConfigError: `source` is not tfds:NAME:SPLIT, or tag_column is an index
      beyond the dataset's columns.
    errors.DataError: an unknown or unprepared dataset, an unknown split, a missing
      feature, a word without a tag.
  """
  features, records = _records(source, data_dir)
  column, tag = _tag_feature(source, features, tag_column)
  if isinstance(tag, tfds.features.ClassLabel):
    tag_of = lambda v: None if int(v) < 0 else tag.int2str(int(v))
  else:
    tag_of = _text
  sentences = []
  for line, record in enumerate(records, 1):
    words = [_text(w) for w in record[WORDS_FEATURE]]
    if not words:
      continue
    tags = [tag_of(t) for t in record[column]]
    if len(tags) != len(words) or None in tags:
      raise errors.DataError(
          f"{source} example {line}: {len(words)} words but {len(tags)} {column} tags"
          f"{' (some missing)' if None in tags else ''}; pick another tag feature")
    sentences.append(conll.TaggedSentence(words, tags, line))
  if not sentences:
    raise errors.DataError(f"{source} has no words: pick a split with sentences in it")
  return sentences
