"""Loads a text corpus from a TFDS builder (prepared on first use) as a list of strings."""
import contextlib
import io
import sys

import tensorflow_datasets as tfds

from prelm_jax import errors
from prelm_jax import library_logs
# Importing the modules registers the "pydocs" and "text_files" builders with tfds.
from prelm_jax.data import pydocs  # pylint: disable=unused-import
from prelm_jax.data import text_files


def _as_str(value):
  return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def builder_kwargs(data_config):
  """The builder arguments that config.data gives its dataset ({} for most datasets).

  Args:
    data_config: config.data.

  Returns:
    A dict for load_documents(..., **builder_kwargs(config.data)).

  Raises:
    errors.DataError: text_files with config.data.paths matching no file.
  """
  if data_config.dataset != text_files.NAME:
    return {}
  return text_files.builder_kwargs(data_config.paths, data_config.documents,
                                   data_config.bad_utf8)


def is_catalogue(builder):
  """A dataset of the TFDS catalogue (preparing it downloads), not one defined here or
  by the user (pydocs, text_files, a test's builder: prepared on first use)."""
  return type(builder).__module__.startswith("tensorflow_datasets.")


def prepared_builder(name, data_dir=None, **builder_args):
  """The TFDS builder of `name`, prepared: ours on first use, the catalogue's already.

  Args:
    name: a registered TFDS builder name, e.g. "pydocs" or "wikipedia/20230601.en".
    data_dir: the TFDS data directory; None or "" for the TFDS default.
    **builder_args: the builder's own arguments (builder_kwargs() above).

  Raises:
    errors.DataError: an unknown dataset, or one that is not prepared.
  """
  try:
    builder = tfds.builder(name, data_dir=data_dir or None, **builder_args)
  except tfds.core.registered.DatasetNotFoundError as e:
    raise errors.DataError(
        f"Unknown dataset {name!r}: set config.data.dataset to a registered TFDS "
        f"builder with a text feature, e.g. 'pydocs', 'text_files', or a catalogue "
        f"dataset prepared in config.data.tfds_data_dir.") from e
  with library_logs.quiet():  # is_prepared() warns that the folder has no dataset_info.json
    if not builder.is_prepared():
      if is_catalogue(builder):  # a run never downloads
        from prelm_jax.data import finetune_tfds  # pylint: disable=g-import-not-at-top
        raise errors.DataError(
            f"Dataset {name!r} is not prepared in {builder.data_dir}: prepare it once "
            f"with {finetune_tfds.prepare_hint(name, data_dir or '~/tensorflow_datasets')}"
            ", or point --config.data.tfds_data_dir at the folder that holds it")
      print(f"Preparing the {builder.name} corpus in {builder.data_dir} (first use; cached "
            "after)", file=sys.stderr)
      _prepare_quietly(builder)
  return builder


def load_documents(name, split, data_dir=None, **builder_args):
  """Returns the texts of one split of a TFDS dataset with `text`/`source` features.

  An unprepared dataset of ours is prepared into `data_dir` first. Reading goes through
  `as_data_source()` (ArrayRecord, no TensorFlow), whose record order is shuffled, so
  documents are sorted by `source`. Holds the whole split in memory: for small
  corpora and tests; pre-training reads prepared shards (data/prepare.py).

  Args:
    name: a registered TFDS builder name, e.g. "pydocs" (or "pydocs/py3.11").
    split: a split name, e.g. "train" or "validation".
    data_dir: the TFDS data directory; None or "" for the TFDS default.
    **builder_args: the builder's own arguments, e.g. text_files' files (see
      builder_kwargs() above).

  Returns:
    The documents' texts, in a deterministic order.

  Raises:
    errors.DataError: an unknown dataset, a missing split or one without text.
  """
  builder = prepared_builder(name, data_dir, **builder_args)
  sources = builder.as_data_source()
  if split not in sources:
    raise errors.DataError(f"Dataset {name!r} has no split {split!r}; it has "
                           f"{sorted(sources)}: pick one of those.")
  source = sources[split]
  records = source.__getitems__(range(len(source))) if len(source) else []
  pairs = sorted((_as_str(r["source"]), _as_str(r["text"])) for r in records)
  texts = [text for _, text in pairs if text.strip()]
  if not texts:
    raise errors.DataError(
        f"Split {split!r} of dataset {name!r} in {builder.data_dir} has no usable "
        f"text: delete that directory to rebuild it, or use a non-empty split.")
  return texts


def _prepare_quietly(builder):
  """download_and_prepare() without TFDS's progress bars and banners.

  Its tqdm bars redraw with cursor-up escapes (\\x1b[A) that end up in log files, and it
  prints "Downloading and preparing dataset ..." and "... downloaded and prepared to ..."
  to stdout itself (termcolor.cprint, no switch); the caller printed one line instead.
  TFDS's progress-bar switch is process-wide; prelm never wants those bars.
  """
  tfds.disable_progress_bar()
  with contextlib.redirect_stdout(io.StringIO()):
    builder.download_and_prepare()
