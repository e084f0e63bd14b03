"""A document's identity and its split: one rule for every corpus builder.

Duplicates are found, and train/validation assigned, by the document's normalised
text, so a text and its whitespace/case variants are one document in one split.
"""
import hashlib

VALIDATION_PER_MILLE = 20   # ~2% of distinct documents go to validation


def normalise(text):
  """The key used for de-duplication and the split: whitespace-collapsed, lowercased."""
  return " ".join(text.split()).lower()


def digest(text):
  """sha256 of the normalised text (not `hash()`, which is salted per process)."""
  return hashlib.sha256(normalise(text).encode("utf-8")).digest()


def split_of(text):
  """Returns "train" or "validation" for a document, stable across runs and machines.

  Uses the digest of the normalised text, so a text and its whitespace/case variants
  always land in the same split.
  """
  bucket = int.from_bytes(digest(text)[:8], "big") % 1000
  return "validation" if bucket < VALIDATION_PER_MILLE else "train"
