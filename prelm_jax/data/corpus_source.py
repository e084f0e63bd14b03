"""Where a pre-training corpus's documents come from: a TFDS dataset read by index.

Our builders (pydocs, text_files) are prepared on first use and hold one sentence per
line. Any other name is a dataset of the TFDS catalogue (`wikipedia/20230601.en`,
`c4/en`, `bookcorpus`, ...), read from config.data.tfds_data_dir where it must be
prepared already as ArrayRecord; its config.data.text_field is split into sentences
here (paragraphs, then nupunkt). A dataset without a validation split holds out ~2% of
its train split by text hash (data/splits.py).

Everything here is picklable (names and paths, no open files), so worker processes of
the preparation stage rebuild the source themselves.
"""
import dataclasses
import hashlib
import json

from prelm_jax import errors
from prelm_jax.data import corpus
from prelm_jax.data import plain_text
from prelm_jax.data import splits

OUR_BUILDERS = ("pydocs", "text_files")
SPLITS = ("train", "validation")


@dataclasses.dataclass(frozen=True)
class CorpusSource:
  dataset: str
  data_dir: str
  builder_args: tuple     # sorted (key, value) pairs of the builder's own arguments
  text_field: str

  @classmethod
  def from_config(cls, data_cfg):
    return cls(data_cfg.dataset, data_cfg.tfds_data_dir or "",
               tuple(sorted(corpus.builder_kwargs(data_cfg).items())),
               data_cfg.get("text_field", "text") or "text")

  @property
  def sentence_per_line(self):
    """Ours hold one sentence per line; any other text is cut into sentences here."""
    return self.dataset.split("/")[0] in OUR_BUILDERS

  def builder(self):
    """The TFDS builder, prepared first if it is one of ours."""
    return corpus.prepared_builder(self.dataset, self.data_dir or None,
                                   **dict(self.builder_args))

  def plan(self, builder):
    """{split: (the TFDS split read, hold-out rule or None)} for train and validation."""
    names = set(builder.info.splits)
    if "train" not in names:
      raise errors.DataError(
          f"Dataset {self.dataset!r} has no train split (it has {sorted(names)}); "
          "pre-training reads its train split: pick another dataset.")
    if "validation" in names:
      return {"train": ("train", None), "validation": ("validation", None)}
    return {"train": ("train", "train"), "validation": ("train", "validation")}

  def fingerprint(self, builder):
    """Names the source's content: builder, config, version and split sizes."""
    info = builder.info
    sizes = {name: [s.num_examples, s.num_bytes] for name, s in info.splits.items()}
    text = json.dumps([builder.name, getattr(builder.builder_config, "name", ""),
                       str(builder.version), sizes, self.text_field], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]

  def texts(self, data_source, lo, hi, held_out):
    """The documents lo..hi-1 of a TFDS split as one-sentence-per-line texts.

    Args:
      data_source: builder.as_data_source()[split].
      lo, hi: the index range.
      held_out: None, or "train"/"validation": keep only documents that
        splits.split_of puts there (a dataset without a validation split); the
        others come back as "" so that document ids stay the index.

    Returns:
      A list of hi - lo strings ("" for a dropped or empty document).
    """
    rows = data_source.__getitems__(range(lo, hi)) if hi > lo else []
    out = []
    for row in rows:
      if self.text_field not in row:
        raise errors.DataError(
            f"Dataset {self.dataset!r} has no feature {self.text_field!r} (it has "
            f"{sorted(row)}): set --config.data.text_field to its text feature.")
      text = row[self.text_field]
      text = text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)
      if held_out and splits.split_of(text) != held_out:
        text = ""
      if not self.sentence_per_line and text:
        text = "\n".join(s for p in plain_text.paragraphs(text)
                         for s in plain_text.sentences(p))
      out.append(text)
    return out
