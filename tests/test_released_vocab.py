"""Released BERT vocabularies (Google's layout: [PAD]=0, [unused*], [UNK]=100,
[CLS]=101, [SEP]=102, [MASK]=103): they load, masking never draws a control token from
them, and they split text exactly as HuggingFace's BertTokenizer does."""
import string

import numpy as np
import pytest

from experiments import base
from prelm_jax import errors
from prelm_jax.data import masking
from prelm_jax.data import pretrain
from prelm_jax.data import tokenizer

WORDS = ["the", "a", "of", "and", "in", "is", "are", "how", "you", "hello", "world",
         "cafe", "café", "costs", "visited", "cities", "json", "decoder", "parse", "list",
         "return", "new", "items", "from", "senor", "señor", "muller", "müller", "zurich",
         "zürich", "naive", "resume", "don", "t", "e", "g", "un", "tokyo", "beijing",
         "Hello", "World", "The", "JSON", "Decoder", "How", "Señor", "Müller", "Zürich",
         "Tokyo", "Beijing", "McDonald", "I", "It"]
PIECES = ["##s", "##es", "##ed", "##ing", "##er", "##ly", "##able", "##believ", "##tion",
          "##ize", "##ization", "##on", "##ald", "##rs"]
ACCENTED = "éèêëüöäñçáíóúâ" + "ÉÜÑ"
CJK = "东京北中国"  # 市 is left out: an unknown character, so its word is [UNK]
TEXTS = [
    "Hello, World! How are you?",
    "The café's crème brûlée costs $4.50 (ünïcödé).",
    "Señor Müller visited Zürich in 1999; naïve résumé, e.g. don't.",
    "东京 and 北京 are cities: 中国北京市, Tokyo & Beijing.",
    "JSONDecoder parses JSON documents; see json.loads().",
    "Unbelievable tokenization: unbelievably, McDonald's iPhone #42 @home [x] {y} <z>",
    "3.14159, 2024-01-01 and 1,000,000 items ~ 50% off!",
    "Unknown: Ωmega, straße, 🙂, ø; mixed CaSe wOrDs.",
    "tabs\tand  spaces\u200b and\u00a0nbsp, " + "x" * 120,
    "",
]


def google_layout_tokens():
  """A small vocab laid out as Google's vocab.txt files are."""
  tokens = ["[PAD]"] + [f"[unused{i}]" for i in range(99)]
  tokens += ["[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"[unused{i}]" for i in range(99, 150)]
  chars = (string.punctuation + string.digits + string.ascii_lowercase
           + string.ascii_uppercase + ACCENTED + CJK)
  tokens += list(chars) + ["##" + c for c in chars] + WORDS + PIECES
  return list(dict.fromkeys(tokens))  # a word equal to a character appears once


@pytest.fixture(scope="module")
def vocab_path(tmp_path_factory):
  path = tmp_path_factory.mktemp("google_bert") / "vocab.txt"
  path.write_text("".join(t + "\n" for t in google_layout_tokens()), encoding="utf-8")
  return path


def test_special_ids_come_from_the_vocab(vocab_path):
  wordpiece = tokenizer.load_wordpiece(str(vocab_path), lowercase=True)
  assert (wordpiece.pad_id, wordpiece.unk_id, wordpiece.cls_id, wordpiece.sep_id,
          wordpiece.mask_id) == (0, 100, 101, 102, 103)
  assert wordpiece.vocab_size == len(google_layout_tokens())
  [ids] = wordpiece.encode_lines(["hello 市 world"])
  assert ids == [wordpiece.token_to_id("hello"), 100, wordpiece.token_to_id("world")]


def test_replacement_ids_leave_out_control_tokens(vocab_path, wordpiece):
  released = tokenizer.load_wordpiece(str(vocab_path))
  ids = released.replacement_ids
  assert ids.dtype == np.int32 and (np.diff(ids) > 0).all()
  first_text = 104 + 51  # after [unused99..149]
  np.testing.assert_array_equal(ids, np.arange(first_text, released.vocab_size))
  assert {released.token_to_id("["), released.token_to_id("]")} <= set(ids.tolist())
  # Our own trained vocabularies: every id after the five special tokens.
  np.testing.assert_array_equal(wordpiece.replacement_ids,
                                np.arange(5, wordpiece.vocab_size))


def test_masking_never_draws_a_control_token(vocab_path):
  released = tokenizer.load_wordpiece(str(vocab_path))
  control = [i for i, t in enumerate(released.tokens) if tokenizer.is_control_token(t)]
  assert len(control) == 155
  rng = np.random.default_rng(0)
  ids = np.full((128,), released.token_to_id("hello"), np.int32)
  drawn = set()
  for _ in range(400):
    out, positions, _, weights = masking.mask_tokens(
        ids, np.zeros((128,), bool), rng, mask_prob=0.15, mask_token_prob=0.0,
        random_token_prob=1.0, max_predictions=20, mask_id=released.mask_id,
        replacement_ids=released.replacement_ids)
    drawn.update(out[positions[weights > 0]].tolist())
  assert not drawn & set(control)
  assert drawn == set(released.replacement_ids.tolist())  # uniform: all of them seen


def test_pretraining_examples_hold_no_unused_token(vocab_path):
  released = tokenizer.load_wordpiece(str(vocab_path))
  texts = ["\n".join(TEXTS[i % 9:] + TEXTS[:i % 9]) for i in range(40)]
  data = pretrain.PretrainData(base.get_config().data, released, texts, batch_size=16,
                               seed=0)
  allowed = {released.pad_id, released.cls_id, released.sep_id, released.mask_id,
             released.unk_id}
  for step in range(8):
    batch = data.batch(step)
    tokens = {released.id_to_token(i) for i in np.unique(batch["input_ids"])}
    control = {t for t in tokens if tokenizer.is_control_token(t)}
    assert control <= {released.id_to_token(i) for i in allowed}, control


@pytest.mark.parametrize("lowercase", [True, False], ids=["uncased", "cased"])
def test_same_ids_as_huggingface(vocab_path, lowercase):
  transformers = pytest.importorskip(
      "transformers", reason="the HuggingFace parity check needs transformers (pip "
      "install -e '.[hf]')")
  # transformers 5 made BertTokenizerFast an alias of BertTokenizer (fast by default),
  # and its constructor ignores vocab_file: from_pretrained(directory) reads vocab.txt.
  # do_lower_case=False leaves strip_accents to follow it: accents kept, as ours.
  bert_class = getattr(transformers, "BertTokenizerFast", transformers.BertTokenizer)
  hf = bert_class.from_pretrained(str(vocab_path.parent), do_lower_case=lowercase)
  ours = tokenizer.load_wordpiece(str(vocab_path), lowercase=lowercase)
  expected = hf(TEXTS, add_special_tokens=False)["input_ids"]
  got = ours.encode_lines(TEXTS)
  for text, want, have in zip(TEXTS, expected, got):
    assert have == want, (text, ours.decode(have), hf.decode(want))
  assert hf(TEXTS[0])["input_ids"] == [ours.cls_id] + got[0] + [ours.sep_id]
  # Both hit [UNK] and ## pieces, and casing matters only when cased.
  flat = sum(got, [])
  assert ours.unk_id in flat and any(ours.id_to_token(i).startswith("##") for i in flat)
  assert (ours.token_to_id("Hello") in flat) == (not lowercase)
  accented = {ours.id_to_token(i) for i in flat} & {"café", "señor", "Müller", "##é"}
  assert bool(accented) == (not lowercase)  # uncased strips accents


def test_line_endings_and_final_newline(vocab_path, tmp_path):
  tokens = google_layout_tokens()
  expected = tokenizer.load_wordpiece(str(vocab_path))
  for name, content in {"no_final_newline": "\n".join(tokens),
                        "crlf": "".join(t + "\r\n" for t in tokens),
                        "crlf_no_final_newline": "\r\n".join(tokens)}.items():
    path = tmp_path / f"{name}.txt"
    path.write_bytes(content.encode("utf-8"))
    loaded = tokenizer.load_wordpiece(str(path))
    assert loaded.tokens == tokens, name
    assert loaded.encode_lines(TEXTS) == expected.encode_lines(TEXTS), name


def test_missing_special_tokens_and_pad_elsewhere_are_refused(tmp_path):
  tokens = google_layout_tokens()
  for missing in tokenizer.SPECIAL_TOKENS:
    path = tmp_path / f"no_{missing[1:-1]}.txt"
    path.write_text("".join(t + "\n" for t in tokens if t != missing), encoding="utf-8")
    with pytest.raises(errors.DataError) as e:
      tokenizer.load_wordpiece(str(path))
    message = str(e.value)
    assert "\n" not in message and str(path) in message
    assert f"it has no {missing} token" in message
  path = tmp_path / "pad_second.txt"
  path.write_text("".join(t + "\n" for t in [tokens[1], tokens[0]] + tokens[2:]),
                  encoding="utf-8")
  with pytest.raises(errors.DataError, match=r"pad_second.txt is malformed: \[PAD\] is id 1, "
                     r"not 0 \(padding is zeros everywhere"):
    tokenizer.load_wordpiece(str(path))
