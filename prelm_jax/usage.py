"""`prelm --help`: the commands, each one's flags and an example, then overrides and exit codes.

The flag descriptions are the absl flags' own help strings, so this text cannot drift
from the flags; only which flags each command reads, and a placeholder for each value,
are listed here. absl's own --help would list every flag of the main module in one
block, without the commands; `--helpfull` still shows absl's full listing.
"""
import os
import re
import sys
import textwrap

HELP_FLAGS = ("-h", "--help", "-help", "--helpshort", "-?")

# command -> (what it does, its flags with a placeholder for the value, an example[, its
# arguments and what happens to them]); an enum flag's placeholder is its values, a
# boolean flag has none.
COMMANDS = {
    "train": (
        "train an experiment (pre-training or fine-tuning) into a workdir; the same command resumes it",
        (("config", "NAME|PATH"), ("workdir", "DIR"), ("allow_config_change", None),
         ("distributed", None), ("coordinator_address", "HOST:PORT"),
         ("num_processes", "N"), ("process_id", "I")),
        "prelm train --config bert_tiny_pydocs --workdir runs/tiny "
        "--config.train.num_steps=2000"),
    "predict": (
        "label a file with a fine-tuned run (its best evaluation's params)",
        (("workdir", "DIR"), ("input", "FILE"), ("output", "FILE")),
        "prelm predict --workdir runs/sst2 --input new.tsv --output labelled.tsv"),
    "prepare": (
        "tokenise and chunk a pre-training experiment's corpus into shards, ahead of training",
        (("config", "NAME|PATH"), ("workers", "N"), ("num_processes", "N"),
         ("process_id", "I")),
        "prelm prepare --config bert_tiny_books --workers 4"),
    "plan": (
        "compile the train step for a mesh; report memory and FLOPs per device",
        (("config", "NAME|PATH"), ("mesh", "AXIS=N,..."), ("devices", "N"),
         ("device-memory", "SIZE")),
        "prelm plan --config bert_large --mesh data=1,fsdp=32,tensor=1 "
        "--device-memory 16GiB"),
    "list": (
        "the registered experiments (and sweeps), each with its docstring's first line",
        (),
        "prelm list"),
    "show": (
        "an experiment's config as a run would save it (overrides applied), then its params",
        (),
        "prelm show bert_mini --config.train.num_steps=2000",
        """\
prelm show NAME|PATH [--config.a.b=value ...]
  Loads the config as `prelm train --config NAME` would, adopts a fine-tuning run's
  config.init_from architecture and checks every value (the mesh waits for the run's
  devices: see prelm plan). Prints the JSON the workdir's config.json would hold, then
  `params: N`, counted from shapes alone (the task model with its heads; a fine-tuning
  head without config.data.labels is counted with 2 outputs). A budget in epochs
  (train.num_epochs) becomes train.num_steps only once train reads the data."""),
    "import-hf": (
        "turn a HuggingFace BERT (or Google's TF BERT checkpoint) into a new prelm run",
        (("config", "NAME|PATH"),),
        "prelm import-hf ~/models/bert-base-uncased runs/bert_base",
        """\
prelm import-hf HF_DIR WORKDIR [--config NAME|PATH] [--config.a.b=value ...]
  HF_DIR   config.json (model_type bert) + model.safetensors, or pytorch_model.bin (read
           with torch.load(weights_only=True): no code runs) + vocab.txt; do_lower_case
           from tokenizer_config.json (default True). BertModel, BertForPreTraining and
           BertForMaskedLM layouts; heads they lack start fresh. Or Google's original
           bert_config.json + bert_model.ckpt.* + vocab.txt (pip install 'prelm_jax[tf]').
  WORKDIR  a new directory: config.json, vocab.txt, checkpoints/0 (the weights, a fresh
           optimizer state), imported_from.json, experiment.py. Never overwritten.
  The architecture comes from HF_DIR; --config (default: base) gives the rest: data,
  train, optim, model.scan_layers, model.vocab_pad_multiple.
  Then: continue pre-training (step 0 -> config.train.num_steps):
           prelm train --config WORKDIR/experiment.py --workdir WORKDIR
        fine-tune: prelm train --config sst2 --workdir runs/sst2 --config.init_from=WORKDIR"""),
    "export-hf": (
        "write a pre-training run as a HuggingFace BertForPreTraining directory",
        (),
        "prelm export-hf runs/bert_tiny_books exported/bert_tiny_books",
        """\
prelm export-hf WORKDIR HF_DIR
  WORKDIR  a prelm pre-training run (its latest checkpoint); pre-LN, ALiBi and LSTM
           models are refused: HF BERT has no such option.
  HF_DIR   a new directory: config.json, model.safetensors (float32, vocabulary padding
           rows left out, scanned layers unstacked), vocab.txt, tokenizer_config.json,
           special_tokens_map.json, for BertForPreTraining.from_pretrained and
           BertTokenizerFast.from_pretrained."""),
    "sweep": (
        "run every run of a sweep (experiments/sweeps/NAME.py) under one directory",
        (),
        "prelm sweep attention_vs_lstm --root runs/attn_lstm --parallel 2",
        """\
prelm sweep NAME --root DIR [--executor local|slurm|tpu] [--parallel N] [--dry-run]
            [--sbatch=OPTION ...] [--config.a.b=value ...]
  NAME     experiments/sweeps/NAME.py (or a path): a base experiment, a grid, zipped
           lists, named cases and seeds; each run is DIR/<run> (e.g. encoder-lstm_seed-1),
           its log DIR/<run>.log, the sweep DIR/sweep.json. --config overrides apply to
           every run. Complete runs are skipped, interrupted ones resume: rerun the same
           command. local: N runs at a time, a summary of failed ones (exit 1); slurm: one
           job array (launch/slurm/sweep.sbatch); tpu: prints launch/tpu/tpu.sh commands."""),
    "report": (
        "a sweep's runs as a table (DIR/report.csv) and learning curves (DIR/curves_*.png)",
        (),
        "prelm report runs/attn_lstm"),
}

_FOOTER = """\
config overrides: --config.a.b=value sets one config key, e.g. --config.train.num_steps=2000
  or --config.model.dtype=bfloat16; experiments/base.py lists every key, and an unknown key
  is an error.
exit codes: 0 done; 2 a one-line error ("prelm: error: ..."); 42 preempted (a checkpoint was
  saved: run the same command again to resume).
prelm <command> --help shows one command; --helpfull lists the flags of every library."""

_WIDTH = 92


def requested(args):
  """Whether the command line (without the program name) asks for help.

  `help` counts only as the first word (`prelm help [train]`): later it may be a value.
  """
  return args[:1] == ["help"] or any(arg in HELP_FLAGS for arg in args)


def text(args, flag_values):
  """The help for the command named in `args` (both commands when none is)."""
  named = [arg for arg in args if arg in COMMANDS][:1] or list(COMMANDS)
  lines = ["usage: prelm <command> --config NAME|PATH [flags] [--config.a.b=value ...]",
           "", "commands:"]
  lines += [f"  {name:<10} {summary}" for name, (summary, *_) in COMMANDS.items()]
  for name in named:
    _, specs, example, *details = COMMANDS[name]
    if details:
      lines += [""] + details[0].splitlines()
    if specs:
      lines += ["", f"prelm {name} flags:"] + _flag_lines(name, flag_values)
    lines += ["  example:", f"    {example}"]
  return "\n".join(lines + ["", _FOOTER])


def _flag_lines(command, flag_values):
  """One aligned entry per flag: `--name=VALUE  help (default: d)`, wrapped."""
  specs = COMMANDS[command][1]
  flags = [flag_values[name] for name, _ in specs]
  heads = [_head(flag, placeholder) for flag, (_, placeholder) in zip(flags, specs)]
  column = 2 + max(map(len, heads)) + 2
  lines = []
  for head, flag in zip(heads, flags):
    # absl puts an enum's values before its help, and plan.py starts its help strings
    # with "plan: " to tell them apart in absl's listing; here both are in the head.
    help_text = re.sub(r"^<[^>]*>: ", "", flag.help).removeprefix(f"{command}: ")
    if flag.default not in (None, False):
      help_text += f" (default: {flag.default})"
    lines += textwrap.wrap(help_text, _WIDTH, initial_indent=f"  {head:<{column - 4}}  ",
                           subsequent_indent=" " * column)
  return lines


def _head(flag, placeholder):
  choices = getattr(flag.parser, "enum_values", None)
  placeholder = "|".join(choices) if choices else placeholder
  return f"--{flag.name}={placeholder}" if placeholder else f"--{flag.name}"


def show(args, flag_values):
  """Prints the help; a reader that stops early (`prelm --help | head`) is no error."""
  try:
    print(text(args, flag_values), flush=True)
  except BrokenPipeError:
    # Python would report the pipe again when it flushes stdout at exit.
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
