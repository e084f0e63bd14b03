"""CoNLL and CoNLL-U readers, IOB1 -> IOB2, one-line file:line errors, and the counts of
CoNLL-2003 and UD English GUM in ../shared/data as their PROVENANCE.md gives them."""
import collections

import pytest

from prelm_jax import errors
from prelm_jax.data import conll

CONLL_2003_STYLE = """\
-DOCSTART- -X- O O

EU NNP I-NP I-ORG
rejects VBZ I-VP O
German JJ I-NP I-MISC
call NN I-NP O

Peter NNP I-NP I-PER
Blackburn NNP I-NP I-PER

-DOCSTART- -X- -X- O
BRUSSELS NNP I-NP I-LOC
"""

# Multi-word tokens ("don't" = do + n't) and an empty node (5.1) are not words.
CONLLU = """\
# sent_id = 1
# text = I don't know.
1\tI\tI\tPRON\tPRP\t_\t3\tnsubj\t_\t_
2-3\tdon't\t_\t_\t_\t_\t_\t_\t_\t_
2\tdo\tdo\tAUX\tVBP\t_\t4\taux\t_\t_
3\tn't\tnot\tPART\tRB\t_\t4\tadvmod\t_\t_
4\tknow\tknow\tVERB\tVB\t_\t0\troot\t_\t_
5\t.\t.\tPUNCT\t.\t_\t4\tpunct\t_\t_

# sent_id = 2
1\tSue\tSue\tPROPN\tNNP\t_\t2\tnsubj\t_\t_
2\tlikes\tlike\tVERB\tVBZ\t_\t0\troot\t_\t_
2.1\tlikes\tlike\tVERB\tVBZ\t_\t_\t_\t0:root\tCopyOf=2
3\ttea\ttea\tNOUN\tNN\t_\t2\tobj\t_\t_
"""


def test_read_conll_skips_docstart_and_splits_on_blank_lines(tmp_path, write_utf8):
  path = write_utf8(tmp_path, "eng.testa", CONLL_2003_STYLE)
  sentences = conll.read_conll(path)
  assert sentences == [
      conll.TaggedSentence(["EU", "rejects", "German", "call"],
                           ["I-ORG", "O", "I-MISC", "O"], 3),
      conll.TaggedSentence(["Peter", "Blackburn"], ["I-PER", "I-PER"], 8),
      # A -DOCSTART- line ends a sentence even without a blank line after it.
      conll.TaggedSentence(["BRUSSELS"], ["I-LOC"], 12),
  ]
  pos = conll.read_conll(path, column=1)
  assert pos[0].tags == ["NNP", "VBZ", "JJ", "NN"]


def test_read_conll_wrong_number_of_columns(tmp_path, one_line_error, write_utf8):
  path = write_utf8(tmp_path, "train.txt", "EU NNP I-NP I-ORG\nrejects VBZ O\n")
  one_line_error(errors.DataError, lambda: conll.read_conll(path),
                 f"{path}:2: 3 columns ('rejects VBZ O'), but the first token line (1) has 4",
                 "give every token line 4 columns")
  path = write_utf8(tmp_path, "words.txt", "EU\nrejects\n")
  one_line_error(errors.DataError, lambda: conll.read_conll(path),
                 f"{path}:1: one column", "at least one tag column")
  path = write_utf8(tmp_path, "ok.txt", "EU NNP\n")
  one_line_error(errors.ConfigError, lambda: conll.read_conll(path, column=4),
                 "tag column 4 does not exist", "pick one of 1..1 or -1")


@pytest.mark.parametrize("text", ["", "\n\n", "-DOCSTART- -X- O O\n\n"])
def test_read_conll_empty(tmp_path, text, one_line_error, write_utf8):
  path = write_utf8(tmp_path, "empty.txt", text)
  one_line_error(errors.DataError, lambda: conll.read_conll(path), path)


def test_read_conllu_skips_multiword_tokens_and_empty_nodes(tmp_path, write_utf8):
  path = write_utf8(tmp_path, "dev.conllu", CONLLU)
  sentences = conll.read_conllu(path)
  assert sentences == [
      conll.TaggedSentence(["I", "do", "n't", "know", "."],
                           ["PRON", "AUX", "PART", "VERB", "PUNCT"], 3),
      conll.TaggedSentence(["Sue", "likes", "tea"], ["PROPN", "VERB", "NOUN"], 11),
  ]
  assert conll.read_conllu(path, column="xpos")[1].tags == ["NNP", "VBZ", "NN"]
  assert conll.read_conllu(path, column="deprel")[0].tags[3] == "root"


def test_read_conllu_errors(tmp_path, one_line_error, write_utf8):
  path = write_utf8(tmp_path, "bad.conllu", "# c\n1\tI\tI\tPRON\tPRP\t_\t0\troot\t_\t_\n"
                    "2 know know VERB VB _ 1 dep _ _\n")
  one_line_error(errors.DataError, lambda: conll.read_conllu(path),
                 f"{path}:3: 1 tab-separated fields, CoNLL-U needs 10", "spaces instead of tabs")
  path = write_utf8(tmp_path, "id.conllu", "1a\tI\tI\tPRON\tPRP\t_\t0\troot\t_\t_\n")
  one_line_error(errors.DataError, lambda: conll.read_conllu(path),
                 f"{path}:1: ID '1a' is not a word index")
  path = write_utf8(tmp_path, "comments.conllu", "# newdoc\n# sent_id = 1\n\n")
  one_line_error(errors.DataError, lambda: conll.read_conllu(path), path, "no sentences")
  one_line_error(errors.ConfigError, lambda: conll.read_conllu(path, column="pos"),
                 "CoNLL-U column 'pos' does not exist", "'upos'")


def test_iob1_to_iob2():
  iob1 = ["I-PER", "I-PER", "O", "I-LOC", "B-LOC", "I-LOC", "I-ORG", "O", "B-MISC"]
  assert conll.iob1_to_iob2(iob1) == [
      "B-PER", "I-PER", "O", "B-LOC", "B-LOC", "I-LOC", "B-ORG", "O", "B-MISC"]
  iob2 = ["B-PER", "I-PER", "O", "B-LOC", "B-LOC"]
  assert conll.iob1_to_iob2(iob2) == iob2
  with pytest.raises(ValueError, match="'PER'"):
    conll.iob1_to_iob2(["O", "PER"])


def test_iob1_sentences_to_iob2_names_the_bad_tag(tmp_path, one_line_error):
  sentences = [conll.TaggedSentence(["EU", "rejects"], ["I-ORG", "O"], 3),
               conll.TaggedSentence(["Peter", "Blackburn"], ["I-PER", "PER"], 8)]
  converted = conll.iob1_sentences_to_iob2(sentences[:1], path="eng.testa")
  assert converted == [conll.TaggedSentence(["EU", "rejects"], ["B-ORG", "O"], 3)]
  one_line_error(errors.DataError,
                 lambda: conll.iob1_sentences_to_iob2(sentences, path="eng.testa"),
                 "eng.testa: sentence at line 8, word 2 ('Blackburn'): tag 'PER' is not O")


# The shared copies; expected numbers from their PROVENANCE.md.


@pytest.mark.parametrize("name, sentences, tokens, entities", [
    ("eng.train", 14_041, 203_621, {"LOC": 7_140, "MISC": 3_438, "ORG": 6_321, "PER": 6_600}),
    ("eng.testa", 3_250, 51_362, {"LOC": 1_837, "MISC": 922, "ORG": 1_341, "PER": 1_842}),
    ("eng.testb", 3_453, 46_435, {"LOC": 1_668, "MISC": 702, "ORG": 1_661, "PER": 1_617}),
])
def test_conll2003_counts(name, sentences, tokens, entities, shared_file):
  path = shared_file("conll2003", name)
  read = conll.iob1_sentences_to_iob2(conll.read_conll(path), path=path)
  assert len(read) == sentences
  assert sum(len(s.words) for s in read) == tokens
  # In IOB2 every entity starts with exactly one B- tag.
  starts = collections.Counter(t[2:] for s in read for t in s.tags if t.startswith("B-"))
  assert starts == entities
  if name == "eng.testa":
    assert sum(starts.values()) == 5_942


@pytest.mark.parametrize("split, sentences, words", [
    ("train", 3_753, 69_760), ("dev", 784, 15_593), ("test", 890, 15_924)])
def test_gum_counts(split, sentences, words, shared_file):
  read = conll.read_conllu(shared_file("ud-english-gum", f"en_gum-ud-{split}.conllu"))
  assert len(read) == sentences
  assert sum(len(s.words) for s in read) == words
  assert len({t for s in read for t in s.tags}) == 17  # all UPOS tags in every split
