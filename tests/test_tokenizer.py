"""WordPiece tokenizer: BERT special ids, casing, vocab.txt round trip and reuse."""
import os

import pytest

from prelm_jax import errors
from prelm_jax.data import tokenizer

LINES = ["Return a new list containing all items from the iterable.",
         "The JSONDecoder parses JSON documents; see json.loads().",
         "Hello [MASK] World", "naïve café"]


@pytest.fixture(scope="module")
def small_texts(pydocs_texts):
  return pydocs_texts["train"][:600]


def test_special_ids_and_attributes(wordpiece):
  assert [wordpiece.token_to_id(t) for t in tokenizer.SPECIAL_TOKENS] == [0, 1, 2, 3, 4]
  assert (wordpiece.pad_id, wordpiece.unk_id, wordpiece.cls_id, wordpiece.sep_id,
          wordpiece.mask_id) == (0, 1, 2, 3, 4)
  assert wordpiece.vocab_size == 2000
  assert [wordpiece.id_to_token(i) for i in range(5)] == list(tokenizer.SPECIAL_TOKENS)


def test_encode_has_no_special_tokens_and_decodes_back(wordpiece):
  ids = wordpiece.encode_lines(LINES)
  assert len(ids) == len(LINES)
  for line_ids in ids:
    assert line_ids
    assert not {0, 2, 3, 4} & set(line_ids)  # a literal "[MASK]" in text is not id 4
  assert wordpiece.decode(ids[0]) == LINES[0].lower()
  assert any(wordpiece.id_to_token(i).startswith("##") for i in sum(ids, []))


def test_training_is_deterministic(wordpiece, pydocs_texts):
  # Same texts -> same vocab, so all processes of a run (and reruns) agree on ids.
  # Untreated, the HF trainer differs on most runs (huggingface/tokenizers#1794).
  for _ in range(2):
    again = tokenizer.train_wordpiece(pydocs_texts["train"], 2000, lowercase=True)
    assert again.tokens == wordpiece.tokens


def test_lowercase_is_configurable(small_texts):
  uncased = tokenizer.train_wordpiece(small_texts, 500, lowercase=True)
  cased = tokenizer.train_wordpiece(small_texts, 500, lowercase=False)
  assert uncased.encode_lines(["Hello WORLD"]) == uncased.encode_lines(["hello world"])
  assert cased.encode_lines(["Hello WORLD"]) != cased.encode_lines(["hello world"])
  assert any(t != t.lower() for t in cased.tokens)
  assert all(t == t.lower() for t in uncased.tokens[5:])
  assert uncased.decode(uncased.encode_lines(["naïve"])[0]) == "naive"  # accents go too


def test_vocab_txt_round_trip(wordpiece, pydocs_texts, tmp_path):
  path = tmp_path / "sub" / "vocab.txt"
  wordpiece.save(str(path))
  assert path.read_text(encoding="utf-8").split("\n")[:-1] == wordpiece.tokens
  assert os.listdir(path.parent) == ["vocab.txt"]  # no temp file left behind
  loaded = tokenizer.load_wordpiece(str(path), lowercase=True)
  lines = [l for t in pydocs_texts["validation"] for l in t.split("\n")] + LINES
  assert loaded.vocab_size == wordpiece.vocab_size
  assert loaded.encode_lines(lines) == wordpiece.encode_lines(lines)


def test_bad_vocab_files_are_refused(tmp_path):
  with pytest.raises(errors.DataError, match="no vocab file"):
    tokenizer.load_wordpiece(str(tmp_path / "missing.txt"))
  cases = {
      "empty": "",
      "order": "[UNK]\n[PAD]\n[CLS]\n[SEP]\n[MASK]\nhello\n",
      "duplicate": "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nhello\nhello\n",
      "blank": "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n\nhello\n",
  }
  for name, content in cases.items():
    path = tmp_path / f"{name}.txt"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(errors.DataError, match=r"vocab file .* is malformed: .*; fix it"):
      tokenizer.load_wordpiece(str(path))
    assert path.read_text(encoding="utf-8") == content
