"""The run's WordPiece vocabulary: its vocab.txt when that belongs to the run, else a
new one trained on the corpus, checked against the config but not yet written (the
workdir is created only after every check passed; see train.py)."""
from prelm_jax import errors
from prelm_jax import workdir as workdir_lib
from prelm_jax.data import tokenizer as tokenizer_lib


def load_or_train(data_cfg, config_dict, wd, train):
  """Returns (tokenizer, is_new).

  Args:
    data_cfg: config.data (vocab_size, lowercase).
    config_dict: the whole config as a dict (to compare with the workdir's).
    wd: the inspected workdir (workdir.Workdir).
    train: () -> a new WordPiece trained on the corpus, called when one is needed.

  Raises:
    errors.DataError: a vocab.txt that cannot be read.
    errors.ConfigError: config.data.vocab_size below what the corpus needs.
  """
  path = wd.file(workdir_lib.VOCAB_FILE)
  if workdir_lib.vocab_belongs_to_run(wd, config_dict):
    fix = (f"put the run's own {workdir_lib.VOCAB_FILE} back (its checkpoints were "
           "trained with it), or start a new --workdir") if wd.has_checkpoints else (
               "fix it, or delete it to train a new one")
    return tokenizer_lib.load_wordpiece(path, data_cfg.lowercase, fix=fix), False
  wordpiece = train()
  if wordpiece.vocab_size > data_cfg.vocab_size:
    # The trainer keeps every character (alone and as a ##continuation) whatever the
    # requested size, so it silently grows a vocabulary that is too small.
    raise errors.ConfigError(
        f"config.data.vocab_size={data_cfg.vocab_size} is below what this corpus "
        f"needs: {len(tokenizer_lib.SPECIAL_TOKENS)} special tokens plus every character "
        f"of its alphabet make {wordpiece.vocab_size}; use "
        f"--config.data.vocab_size={wordpiece.vocab_size} or more")
  return wordpiece, True
