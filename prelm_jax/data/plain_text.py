"""One file's text -> documents whose lines are sentences, as pre-training reads them.

The pipeline (data/pretrain.py) takes each non-empty line of a document as a sentence
and builds next-sentence pairs from them, so hard-wrapped prose is unwrapped into
paragraphs first and then split into sentences by nupunkt (a Punkt model shipped in
its wheel: nothing is downloaded at run time, and it needs ~2 s for 13 MB of books).
"""
import re

import nupunkt

DOCUMENT_MODES = ("blank_lines", "file")
# "blank_lines" groups a file's consecutive paragraphs into documents of at least this
# many sentences (a paragraph is never cut). BERT used one document per article or
# book section; 64 sentences is ~12 sequences of 128 tokens, enough for next-sentence
# pairs, while a book still gives hundreds of documents for the hash split to spread.
SENTENCES_PER_DOCUMENT = 64

# Project Gutenberg's frame: "*** START OF THIS PROJECT GUTENBERG EBOOK X ***" (some
# files write "***START OF THE ..."), the licence after "*** END OF ...", an "End of
# the Project Gutenberg EBook of X" line before that, and a volunteer credit
# ("Produced by ...", "Transcribed from ...") as the first paragraph of the book.
_START = re.compile(r"^\*{3}\s*START OF\b.*GUTENBERG.*$", re.M | re.I)
_END = re.compile(r"^\*{3}\s*END OF\b.*GUTENBERG", re.M | re.I)
_END_NOTE = re.compile(r"^End of (the )?Project Gutenberg", re.M | re.I)
_CREDIT = re.compile(r"\s*(Produced|Transcribed|Prepared) (by|from)\b", re.I)
_PARAGRAPH_BREAK = re.compile(r"\n\s*\n")  # one or more blank (or blank-looking) lines


def strip_gutenberg(text):
  """Returns the book between Project Gutenberg's START and END markers.

  Text before the START line (and the line itself) goes, as does everything from the
  END line on, each when present; then the closing "End of the Project Gutenberg
  EBook" note and an opening "Produced by ..." credit paragraph. Text without the
  markers is returned as it is.
  """
  start, end = _START.search(text), _END.search(text)
  if start is None and end is None:
    return text
  body = text[start.end() if start else 0:]
  end = _END.search(body)
  if end:
    body = body[:end.start()]
  notes = list(_END_NOTE.finditer(body))
  if notes:
    body = body[:notes[-1].start()]
  credit = _CREDIT.match(body)
  if credit:
    credit_end = _PARAGRAPH_BREAK.search(body, credit.end())
    body = body[credit_end.end():] if credit_end else ""
  return body


def paragraphs(text):
  """Blank-line-separated blocks, each unwrapped to one line (whitespace collapsed)."""
  unwrapped = (" ".join(block.split()) for block in _PARAGRAPH_BREAK.split(text))
  return [p for p in unwrapped if p]


def sentences(paragraph):
  """The sentences of one unwrapped paragraph, in order; together they hold all its text."""
  # load() is cached by nupunkt: the model is read once per process.
  return [s.strip() for s in nupunkt.load("default").tokenize(paragraph) if s.strip()]


def documents(text, mode="blank_lines"):
  """Splits one file's text into documents of one sentence per line.

  Args:
    text: the file's text ("\\n" line ends), Gutenberg frame already removed.
    mode: "blank_lines": paragraphs are separated by blank lines and grouped into
      documents of >= SENTENCES_PER_DOCUMENT sentences (a short tail joins the
      document before it); "file": the whole text is one document.

  Returns:
    A list of strings, each a document whose lines are its sentences.
  """
  if mode not in DOCUMENT_MODES:
    raise ValueError(f"mode={mode!r} is not one of {DOCUMENT_MODES}")
  per_paragraph = [sentences(p) for p in paragraphs(text)]
  if mode == "file":
    lines = [s for group in per_paragraph for s in group]
    return ["\n".join(lines)] if lines else []
  docs, current = [], []
  for group in per_paragraph:
    current.extend(group)
    if len(current) >= SENTENCES_PER_DOCUMENT:
      docs.append(current)
      current = []
  if current:
    if docs and len(current) < SENTENCES_PER_DOCUMENT // 2:
      docs[-1].extend(current)
    else:
      docs.append(current)
  return ["\n".join(d) for d in docs]
