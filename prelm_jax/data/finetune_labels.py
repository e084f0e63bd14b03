"""Label vocabularies for fine-tuning, and the check that every label is a known one.

Both take the reader's records (finetune_tables.Example or conll.TaggedSentence), so an
unknown label is reported with the file and line it is on (the TFDS split and example).
"""
from prelm_jax import errors
from prelm_jax.data import finetune_sources

_SHOWN = 20  # labels listed in full in an error message; a longer list is cut


def label_vocabulary(train_records, *, path, configured=None):
  """The list of class labels (or tags); a label's position in it is its id.

  Args:
    train_records: the training file's Examples (classification) or TaggedSentences.
    path: that file, for error messages.
    configured: the configured label list, or None to use the labels seen in training.

  Returns:
    `configured` as a list if given (every training label must be in it), else the
    training labels sorted: numerically when all are integers ("2" before "10"), else
    as strings. Sorting gives GLUE's ids: "0"/"1" and entailment/not_entailment, so the
    positive class of binary F1 (id 1) is "1" (MRPC) as in GLUE.

  Raises:
    errors.ConfigError: `configured` is empty, a string, or names a label twice.
    errors.DataError: a training label is not in `configured` (file and line).
  """
  if configured is not None:
    if isinstance(configured, str) or not configured:
      raise errors.ConfigError(f"labels={configured!r}: give a non-empty list of label "
                               "strings, or none to take them from the training file")
    configured = [str(label) for label in configured]
    if len(set(configured)) != len(configured):
      raise errors.ConfigError(f"labels={configured} names a label twice: list each once")
    check_known_labels(train_records, configured, path=path,
                       known_as="the configured labels")
    return configured
  seen = {label for label, _ in _labels_and_places(train_records, path)}
  if not seen:
    raise ValueError(f"{path}: no labels in the training records")
  if all(_is_integer(label) for label in seen):
    return sorted(seen, key=int)
  return sorted(seen)


def check_known_labels(records, vocabulary, *, path, known_as="the training labels"):
  """Checks that every label of `records` is in `vocabulary` (e.g. dev against train).

  Args:
    records: Examples or TaggedSentences of one file.
    vocabulary: the known labels (from label_vocabulary).
    path: the records' file, for the error message.
    known_as: what the vocabulary is, for the message.

  Raises:
    errors.DataError: the first unknown label, with its file and line, e.g. "label 'X'
      in dev.tsv (line 12) is not among the training labels [...]".
  """
  known = set(vocabulary)
  for label, place in _labels_and_places(records, path):
    if label not in known:
      raise errors.DataError(
          f"label {label!r} in {path} ({place}) is not among {known_as} "
          f"{_show(vocabulary)}; fix the file, or list every label in the config's "
          "label list")


def _labels_and_places(records, path):
  """Yields (label, place) for every label of the records: "line N" or "sentence at
  line N" of a file, "example N" of a TFDS split (finetune_sources.place)."""
  for record in records:
    place = finetune_sources.place(path, record.line)
    if hasattr(record, "tags"):
      sentence = place if finetune_sources.is_tfds(path) else f"sentence at {place}"
      for tag in record.tags:
        yield tag, sentence
      continue
    if not isinstance(record.label, str):
      raise ValueError(f"{place}: label {record.label!r} is not a class label "
                       "(regression scores and unlabelled rows have no vocabulary)")
    yield record.label, place


def _is_integer(label):
  try:
    int(label)
  except ValueError:
    return False
  return True


def _show(labels):
  labels = list(labels)
  if len(labels) <= _SHOWN:
    return str(labels)
  return f"{str(labels[:_SHOWN])[:-1]}, ... ({len(labels)} in all)]"
