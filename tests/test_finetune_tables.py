"""Labelled tables (TSV/CSV/JSONL): columns by name, quoting, labels, one-line errors,
and the GLUE files in ../shared/data read with the counts their PROVENANCE.md gives."""
import collections

import pytest

from prelm_jax import errors
from prelm_jax.data import finetune_tables



def test_tsv_keeps_quotes_and_reads_columns_by_name(tmp_path, write_utf8):
  path = write_utf8(tmp_path, "dev.tsv", 'index\tsentence1\tsentence2\tlabel\n'
                    '0\tHe said "no.\tA "quote\tentailment\n'
                    '\n'  # blank lines are skipped
                    '1\tx\ty\tnot_entailment\n')
  examples = finetune_tables.read_table(path, text_columns=["sentence1", "sentence2"],
                                        label_column="label")
  assert examples == [
      finetune_tables.Example(('He said "no.', 'A "quote'), "entailment", 2),
      finetune_tables.Example(("x", "y"), "not_entailment", 4)]


def test_csv_is_quoted_and_jsonl_reads_keys(tmp_path, write_utf8):
  csv_path = write_utf8(tmp_path, "train.csv", 'text,label\n"a, b ""c""",1\n"two\nlines",0\n')
  examples = finetune_tables.read_table(csv_path, text_columns=["text"], label_column="label")
  assert examples == [finetune_tables.Example(('a, b "c"',), "1", 2),
                      finetune_tables.Example(("two\nlines",), "0", 3)]
  jsonl = write_utf8(tmp_path, "train.jsonl", '{"text": "good", "label": 1}\n\n'
                     '{"text": "bad", "label": "neg", "extra": 3}\n')
  examples = finetune_tables.read_table(jsonl, text_columns=["text"], label_column="label")
  assert examples == [finetune_tables.Example(("good",), "1", 1),
                      finetune_tables.Example(("bad",), "neg", 3)]


def test_regression_scores_unlabelled_rows_and_delimiter_override(tmp_path, write_utf8):
  path = write_utf8(tmp_path, "sts.txt", "s1|s2|score\na|b|4.750\nc|d| 0 \n")
  examples = finetune_tables.read_table(path, text_columns=["s1", "s2"],
                                        label_column="score", delimiter="|",
                                        regression=True)
  assert [e.label for e in examples] == [4.75, 0.0]
  unlabelled = finetune_tables.read_table(path, text_columns=["s2"], label_column=None,
                                          delimiter="|")
  assert unlabelled == [finetune_tables.Example(("b",), None, 2),
                        finetune_tables.Example(("d",), None, 3)]


def test_check_text_columns(one_line_error):
  finetune_tables.check_text_columns("single", ["sentence"])
  finetune_tables.check_text_columns("pair", ["sentence1", "sentence2"])
  one_line_error(errors.ConfigError,
                 lambda: finetune_tables.check_text_columns("pair", ["sentence"]),
                 "pair task reads 2 text column(s), got 1: ['sentence']",
                 "['sentence1', 'sentence2']")
  one_line_error(errors.ConfigError,
                 lambda: finetune_tables.check_text_columns("single", ["a", "b"]),
                 "single task reads 1", "--config.data.sentence_pair=True")
  one_line_error(errors.ConfigError,
                 lambda: finetune_tables.check_text_columns("single", "sentence"),
                 "is a string", "['sentence']")
  one_line_error(errors.ConfigError,
                 lambda: finetune_tables.check_text_columns("pair", ["a", "a"]), "twice")


def test_missing_column_lists_columns_and_suggests_the_delimiter(tmp_path, one_line_error,
                                                                 write_utf8):
  # A comma-separated file named .tsv: the header is one column holding commas.
  path = write_utf8(tmp_path, "train.tsv", "sentence,label\nfine,1\n")
  one_line_error(errors.DataError,
                 lambda: finetune_tables.read_table(path, text_columns=["sentence"],
                                                    label_column="label"),
                 path, "no column 'sentence'", "['sentence,label']",
                 "splits on commas into ['sentence', 'label']: pass delimiter=','")
  # A plain typo: the columns found and the fix.
  path = write_utf8(tmp_path, "dev.tsv", "sentence\tlabel\nfine\t1\n")
  one_line_error(errors.DataError,
                 lambda: finetune_tables.read_table(path, text_columns=["text"],
                                                    label_column="label"),
                 path, "no column 'text'", "['sentence', 'label']",
                 "set the column names to ones in the header")


def test_row_with_the_wrong_number_of_fields(tmp_path, one_line_error, write_utf8):
  path = write_utf8(tmp_path, "train.tsv", "sentence\tlabel\nok\t1\na\ttab inside\t0\n")
  one_line_error(errors.DataError,
                 lambda: finetune_tables.read_table(path, text_columns=["sentence"],
                                                    label_column="label"),
                 f"{path}:3: 3 fields, but the header (line 1) has 2", "a tab inside")


@pytest.mark.parametrize("text, needle", [
    ("", "is empty"),
    ("  \n\n", "is empty"),
    ("sentence\tlabel\n", "has a header but no rows"),
])
def test_empty_files(tmp_path, text, needle, one_line_error, write_utf8):
  path = write_utf8(tmp_path, "train.tsv", text)
  one_line_error(errors.DataError,
                 lambda: finetune_tables.read_table(path, text_columns=["sentence"],
                                                    label_column="label"),
                 path, needle)


@pytest.mark.parametrize("name, text, needle", [
    ("t.tsv", "s\tscore\na\tfive\n", ":2: the score 'score' is 'five', not a finite number"),
    ("t.tsv", "s\tscore\na\tnan\n", ":2: the score 'score' is 'nan'"),
    ("t.tsv", "s\tscore\na\t \n", ":2: the label 'score' is empty"),
    ("t.jsonl", '{"s": "a", "score": [1]}\n', ":1: the score 'score' is [1]"),
    ("t.jsonl", '{"s": "a", "score": true}\n', ":1: the score 'score' is True"),
])
def test_bad_regression_scores(tmp_path, name, text, needle, one_line_error, write_utf8):
  path = write_utf8(tmp_path, name, text)
  one_line_error(errors.DataError,
                 lambda: finetune_tables.read_table(path, text_columns=["s"],
                                                    label_column="score", regression=True),
                 path + needle)


@pytest.mark.parametrize("text, needle", [
    ('{"s": "a", "y": 1}\nnot json\n', ":2: not JSON"),
    ('["a", 1]\n', ":1: a JSON list, not an object"),
    ('{"s": "a"}\n', ":1: no key 'y' (keys found: ['s'])"),
    ('{"s": 3, "y": 1}\n', ":1: 's' is 3, not a string"),
    ('{"s": "a", "y": true}\n', ":1: label 'y' is true"),
    ('{"s": "a", "y": 1.0}\n', ":1: label 'y' is 1.0"),
    ('{"s": "a", "y": null}\n', ":1: the label 'y' is empty"),
])
def test_bad_jsonl(tmp_path, text, needle, one_line_error, write_utf8):
  path = write_utf8(tmp_path, "train.jsonl", text)
  one_line_error(errors.DataError,
                 lambda: finetune_tables.read_table(path, text_columns=["s"], label_column="y"),
                 path + needle)


def test_unknown_extension_missing_file_and_not_utf8(tmp_path, one_line_error, write_utf8):
  path = write_utf8(tmp_path, "train.txt", "s\ty\na\t1\n")
  one_line_error(errors.DataError,
                 lambda: finetune_tables.read_table(path, text_columns=["s"], label_column="y"),
                 path, "name the file .tsv, .csv or .jsonl, or pass the delimiter")
  missing = str(tmp_path / "nope.tsv")
  one_line_error(errors.DataError,
                 lambda: finetune_tables.read_table(missing, text_columns=["s"],
                                                    label_column="y"),
                 f"{missing} does not exist")
  latin1 = tmp_path / "latin1.tsv"
  latin1.write_bytes("s\ty\ncaf\u00e9\t1\n".encode("latin-1"))
  one_line_error(errors.DataError,
                 lambda: finetune_tables.read_table(str(latin1), text_columns=["s"],
                                                    label_column="y"),
                 f"{latin1}:2: not UTF-8", "re-save the file as UTF-8")


def test_byte_order_mark_is_not_part_of_the_first_column(tmp_path):
  path = tmp_path / "excel.csv"
  path.write_bytes("\ufefftext,label\nhi,1\n".encode("utf-8"))
  examples = finetune_tables.read_table(str(path), text_columns=["text"],
                                        label_column="label")
  assert examples == [finetune_tables.Example(("hi",), "1", 2)]


def test_bad_byte_after_a_byte_order_mark_is_placed_in_the_file(tmp_path):
  path = tmp_path / "excel.csv"
  path.write_bytes("\ufefftext,label\n".encode("utf-8") + b"caf\xe9,1\n")
  # The BOM's 3 bytes count: 3 + 11 + 3 = byte 17, as a hex editor shows it.
  with pytest.raises(errors.DataError, match=r"excel.csv:2: not UTF-8 text \(byte 17: "):
    finetune_tables.read_table(str(path), text_columns=["text"], label_column="label")


# The GLUE copies in ../shared/data; expected numbers from their PROVENANCE.md.


@pytest.mark.parametrize("split, counts", [
    ("train", {"1": 37_569, "0": 29_780}),
    ("dev", {"1": 444, "0": 428}),
])
def test_sst2(split, counts, shared_file):
  examples = finetune_tables.read_table(shared_file("sst2", f"{split}.tsv"),
                                        text_columns=["sentence"], label_column="label")
  assert collections.Counter(e.label for e in examples) == counts
  assert examples[0].line == 2 and examples[-1].line == sum(counts.values()) + 1


@pytest.mark.parametrize("split, counts, rows_with_quotes", [
    ("train", {"entailment": 1_249, "not_entailment": 1_241}, 454),
    ("dev", {"entailment": 146, "not_entailment": 131}, 48),
])
def test_rte(split, counts, rows_with_quotes, shared_file):
  examples = finetune_tables.read_table(shared_file("rte", f"{split}.tsv"),
                                        text_columns=["sentence1", "sentence2"],
                                        label_column="label")
  assert collections.Counter(e.label for e in examples) == counts
  # Quote characters stay text (read with quoting off), as PROVENANCE.md counts them.
  assert sum('"' in a + b for a, b in (e.texts for e in examples)) == rows_with_quotes


@pytest.mark.parametrize("split, count, mean, rows_with_quotes", [
    ("train", 5_749, 2.701, 252),
    ("dev", 1_500, 2.364, 110),
])
def test_stsb(split, count, mean, rows_with_quotes, shared_file):
  examples = finetune_tables.read_table(shared_file("stsb", f"{split}.tsv"),
                                        text_columns=["sentence1", "sentence2"],
                                        label_column="score", regression=True)
  scores = [e.label for e in examples]
  assert len(scores) == count
  assert (min(scores), max(scores)) == (0.0, 5.0)
  assert sum(scores) / count == pytest.approx(mean, abs=5e-4)
  assert sum('"' in a + b for a, b in (e.texts for e in examples)) == rows_with_quotes


def test_real_tsv_read_with_the_wrong_delimiter(one_line_error, shared_file):
  path = shared_file("rte", "dev.tsv")
  one_line_error(errors.DataError,
                 lambda: finetune_tables.read_table(
                     path, text_columns=["sentence1", "sentence2"], label_column="label",
                     delimiter=","),
                 path, "no column 'sentence1'", "pass delimiter='\\t'")
