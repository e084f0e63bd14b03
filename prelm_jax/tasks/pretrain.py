"""Pre-training: masked LM + a sentence-pair objective on a text corpus (BERT's).

The model is BertForPreTraining (encoder, tied MLM head, a two-way sentence head); the
data are masked sentence pairs built on the fly from a TFDS corpus (data/pretrain.py);
the loss is the MLM mean plus the sentence objective's mean. config.data.
sentence_objective picks that objective: nsp (BERT), sop (ALBERT's sentence order;
metrics sop_loss, sop_accuracy, so reports never mix the two) or none (MLM only: no
sentence head, loss, or metrics).

config.data.packing puts several pairs in one row (batch_spec in data/pretrain.py):
attention stays inside each pair, and the sentence head scores each pair slot, so
the losses are those of the same pairs unpacked (the sentence mean is over pairs).
"""
import json
import sys

import jax.numpy as jnp

from prelm_jax import losses
from prelm_jax.data import chunks
from prelm_jax.data import mixture
from prelm_jax.data import prepare
from prelm_jax.data import pretrain
from prelm_jax.data import vocabulary
from prelm_jax.model import pretraining
from prelm_jax.tasks import base

MIXTURE_FILE = "mixture.json"  # in the workdir: weights and realised proportions


class PretrainTask(base.Task):
  """MLM + NSP/SOP. Metrics: mlm_loss, mlm_accuracy, loss, and <objective>_loss,
  <objective>_accuracy for objective nsp or sop."""

  name = "pretrain"
  progress_metrics = ("loss", "mlm_accuracy")
  best_metric = ("mlm_accuracy", "max")

  @property
  def sentence_objective(self):
    """nsp | sop | none (config.data.sentence_objective)."""
    return pretrain.sentence_objective(self.config.data)

  def build_model(self, vocab_size):
    return pretraining.build_model(self.config.model, vocab_size,
                                   sentence_head=self.sentence_objective != "none")

  def batch_spec(self):
    return pretrain.batch_spec(self.config.data)

  @property
  def packing(self):
    """config.data.packing: several sentence pairs per row."""
    return pretrain.packing(self.config.data)

  def model_inputs(self, batch):
    inputs = (batch["input_ids"], batch["token_type_ids"], batch["attention_mask"],
              batch["mlm_positions"])
    if not self.packing:
      return inputs
    return inputs + (batch["segment_ids"], batch["position_ids"],
                     batch.get("cls_positions"))  # None for objective none

  def pair_weights(self, batch):
    """The weight of each sentence pair: [B] one a row, or [B, S] packed (objective
    none: [B], unused)."""
    rows = batch["example_weights"].astype(jnp.float32)
    if not self.packing or self.sentence_objective == "none":
      return rows
    # A padding row (example_weights 0) counts none of its pairs.
    return batch["nsp_weights"].astype(jnp.float32) * rows[:, None]

  def denominators(self, batch):
    """(masked positions, sentence pairs) of the batch."""
    return (jnp.sum(batch["mlm_weights"].astype(jnp.float32)),
            jnp.sum(self.pair_weights(batch)))

  def loss_and_sums(self, model, params, batch, *, deterministic, rngs=None,
                    denominators=None):
    """Runs the model; returns (MLM mean + NSP/SOP mean, metric sums).

    Args:
      model: the model build_model made.
      params: its parameters.
      batch: a dict of arrays (batch_spec).
      deterministic: disables dropout when True.
      rngs: flax rngs ({"dropout": key}) when not deterministic.
      denominators: (masked positions, sentence pairs) of the WHOLE step's batch; a
        micro-batch divides its sums by these so that the micro-batches' losses (and
        grads) add up to the big batch's mean. None: this batch's own weight sums.
    """
    mlm_logits, nsp_logits = model.apply(
        {"params": params}, *self.model_inputs(batch), deterministic=deterministic,
        rngs=rngs)
    mlm = losses.mlm_loss(mlm_logits, batch["mlm_ids"], batch["mlm_weights"])
    mlm_den, pair_den = denominators or (mlm["weight_sum"], None)
    loss = mlm["loss_sum"] / jnp.maximum(mlm_den, 1.0)
    sums = {f"mlm_{k}": v for k, v in mlm.items()}
    objective = self.sentence_objective
    if objective != "none":
      pair = losses.nsp_loss(nsp_logits, batch["nsp_labels"], self.pair_weights(batch))
      pair_den = pair["weight_sum"] if pair_den is None else pair_den
      loss = loss + pair["loss_sum"] / jnp.maximum(pair_den, 1.0)
      sums.update({f"{objective}_{k}": v for k, v in pair.items()})
    return loss, sums

  def summarize(self, sums):
    ratio = losses.ratio
    out = {
        "mlm_loss": ratio(sums["mlm_loss_sum"], sums["mlm_weight_sum"]),
        "mlm_accuracy": ratio(sums["mlm_correct_sum"], sums["mlm_weight_sum"]),
    }
    out["loss"] = out["mlm_loss"]
    objective = self.sentence_objective
    if objective != "none":
      out[f"{objective}_loss"] = ratio(sums[f"{objective}_loss_sum"],
                                       sums[f"{objective}_weight_sum"])
      out[f"{objective}_accuracy"] = ratio(sums[f"{objective}_correct_sum"],
                                           sums[f"{objective}_weight_sum"])
      out["loss"] += out[f"{objective}_loss"]
    return out

  def prepare_data(self, wd):
    """The vocabulary (the run's, or trained on a sample of the corpus and cached) and
    the corpus (each mixture source) prepared for it (data/prepare.py; found as it is
    after the first run). A mixture's realised proportions go to mixture.json."""
    data = self.config.data
    tokenizer, is_new = vocabulary.load_or_train(
        data, self.config.to_dict(), wd, lambda: prepare.trained_vocabulary(data))
    sources = mixture.sources(data)
    # train.py runs this on process 0 first: the others find the corpus prepared.
    directories = [prepare.prepare(cfg, tokenizer) for cfg, _ in sources]
    if len(sources) == 1:  # before the workdir exists (a mixture's sources may be small)
      pretrain.check_enough_chunks(
          prepare.read_manifest(directories[0])["splits"]["train"]["chunks"],
          self.config.train.batch_size)
    files = {}
    if len(sources) > 1:
      report = self._mixture_report(sources)
      files[MIXTURE_FILE] = json.dumps(report, indent=1) + "\n"
      print("Mixture over the run's examples: " + ", ".join(
          f"{r['dataset']} {r['realised']:.2%} (weight {r['weight']:.2%})"
          for r in report["sources"]), file=sys.stderr)
    return base.PreparedData(tokenizer, is_new, directories, files=files)

  def _mixture_report(self, sources):
    weights = [w for _, w in sources]
    examples = self.config.train.num_steps * self.config.train.batch_size
    realised = mixture.Schedule(weights).proportions(examples)
    return {"examples": examples, "sources": [
        {"dataset": cfg.dataset, "weight": w / sum(weights), "realised": float(r)}
        for (cfg, w), r in zip(sources, realised)]}

  def pipelines(self, prepared, *, process_index, process_count):
    config, tokenizer = self.config, prepared.tokenizer
    splits = [{split: prepare.PreparedSplit(directory, split, tokenizer)
               for split in ("train", "validation")} for directory in prepared.inputs]
    process = dict(process_index=process_index, process_count=process_count)
    batch = dict(batch_size=config.train.batch_size, seed=config.seed, **process)
    sources = mixture.sources(config.data)
    if len(sources) > 1:
      train = pretrain.MixtureData(
          config.data, tokenizer, [s["train"] for s in splits], [w for _, w in sources],
          names=[cfg.dataset for cfg, _ in sources], **batch)
      validation = chunks.ConcatenatedChunks([s["validation"] for s in splits])
    else:
      train = pretrain.training_data(config.data, tokenizer, splits[0]["train"], **batch)
      validation = splits[0]["validation"]
    eval_batches = pretrain.eval_batches(
        config.data, tokenizer, validation, batch_size=config.train.eval_batch_size,
        seed=config.seed + 1, **process)
    return base.Pipelines(train, {"eval": eval_batches})

  def summary_lines(self, result):
    """Held-out accuracy and the model's guesses for config.train.fill_mask_prompts."""
    from prelm_jax import analysis  # pylint: disable=g-import-not-at-top
    m = result.final_metrics
    objective = self.sentence_objective
    pair = ("" if objective == "none" else
            f", {objective.upper()} accuracy {m[objective + '_accuracy']:.4f}")
    lines = [f"Validation after {m['step']} steps (held-out {self.config.data.dataset} "
             f"text): MLM accuracy {m['mlm_accuracy']:.4f}{pair}, loss {m['loss']:.4f}"]
    for prompt in self.config.train.fill_mask_prompts:
      for i, top in enumerate(analysis.fill_mask(result.model, result.state.params,
                                                 result.tokenizer, prompt)):
        guesses = ", ".join(f"{tok} ({p:.2f})" for tok, p in top)
        lines.append(f"  {prompt!r} [MASK {i + 1}] -> {guesses}")
    return lines

  def analytic_flops(self, num_params):
    """Training FLOPs per step: 3 x forward (backward = 2 x forward), matmuls only.

    Returns:
      (6 * N * tokens, the same with BERT's details): the detailed count drops the
      embedding tables from N (looked up, not multiplied), adds attention's QK^T and
      AV (4 * L * H per token and layer), and runs the MLM output layer (tied [V, H]
      plus a dense H x H) only at the P masked positions.
    """
    m, d = self.config.model, self.config.data
    rows, length = self.config.train.batch_size, d.max_seq_len
    preds = d.max_predictions_per_seq
    tokens = rows * length
    h, layers = m.hidden_size, m.num_layers
    multiple = m.get("vocab_pad_multiple", 1)
    vocab = -(-d.vocab_size // multiple) * multiple
    wi = 2 if m.get("mlp_activation", "gelu") == "geglu" else 1  # GeGLU: gate + value
    layer_matmul = 4 * h * h + (wi + 1) * h * m.mlp_dim  # q, k, v, out; wi, wo
    pair_head = 0 if self.sentence_objective == "none" else 2 * h
    # Packed rows pool and score every pair slot (objective none pools nothing).
    slots = (pretrain.max_pairs_per_row(d)
             if self.packing and self.sentence_objective != "none" else 1)
    forward = (tokens * layers * (2 * layer_matmul + 4 * length * h)
               + rows * preds * 2 * (h * h + vocab * h)
               + rows * slots * 2 * (h * h + pair_head))  # pooler, NSP/SOP
    return 6 * num_params * tokens, 3 * forward
