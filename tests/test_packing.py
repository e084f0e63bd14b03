"""Sequence packing (config.data.packing): the pairs of a packed row compute what each
computes alone, the task's losses divide by the same counts, and tokens_per_sec counts
real tokens only.

The rows are built here by hand, following the contract in data/pretrain.py batch_spec,
so these tests need no corpus and no data-side packer.
"""
import functools

import flax.linen as nn
import jax
import ml_collections
import numpy as np
import pytest

from experiments import base
from prelm_jax import errors
from prelm_jax import optim
from prelm_jax import sharding
from prelm_jax import state as state_lib
from prelm_jax import tasks
from prelm_jax import train
from prelm_jax import train_step as step_lib
from prelm_jax import validation
from prelm_jax.data import pretrain
from prelm_jax.model import build_model

VOCAB = 128  # a multiple of base.py's vocab_pad_multiple: no padding rows
CLS, SEP = 2, 3
LENGTH = 24  # L: every row, packed or not
SLOTS = 4    # S: pair slots of a packed row
PREDS = 2    # masked positions of each pair
# Five pairs: three fill a row to 20 of 24 tokens, the other two 18 (two unused slots).
LENGTHS = (6, 9, 5, 11, 7)
ROWS_OF_PAIRS = ((0, 1, 2), (3, 4))


def make_pairs(seed=0):
  """[CLS] A [SEP] B [SEP] pairs of random ids, each with its masked positions."""
  rng = np.random.default_rng(seed)
  pairs = []
  for n in LENGTHS:
    a_len = (n - 3) // 2
    ids = rng.integers(5, VOCAB, n).astype(np.int32)
    ids[[0, a_len + 1, n - 1]] = CLS, SEP, SEP
    types = (np.arange(n) > a_len + 1).astype(np.int32)
    positions = np.sort(rng.choice(np.arange(1, n - 1), PREDS, replace=False))
    pairs.append(dict(ids=ids, types=types, positions=positions.astype(np.int32),
                      labels=rng.integers(5, VOCAB, PREDS).astype(np.int32),
                      nsp=int(rng.integers(0, 2))))
  return pairs


def unpacked_batch(pairs):
  """One pair a row, right-padded to LENGTH: today's batch (batch_spec unpacked)."""
  rows = len(pairs)
  batch = {k: np.zeros((rows, LENGTH), np.int32)
           for k in ("input_ids", "token_type_ids", "attention_mask")}
  batch.update(mlm_positions=np.stack([p["positions"] for p in pairs]),
               mlm_ids=np.stack([p["labels"] for p in pairs]),
               mlm_weights=np.ones((rows, PREDS), np.float32),
               nsp_labels=np.array([p["nsp"] for p in pairs], np.int32),
               example_weights=np.ones(rows, np.float32))
  for r, p in enumerate(pairs):
    n = len(p["ids"])
    batch["input_ids"][r, :n] = p["ids"]
    batch["token_type_ids"][r, :n] = p["types"]
    batch["attention_mask"][r, :n] = 1
  return batch


def packed_batch(pairs, rows_of_pairs=ROWS_OF_PAIRS):
  """The same pairs packed into rows (batch_spec with packing): pair j of a row starts
  where pair j - 1 ended; masked positions move into row coordinates."""
  rows, preds = len(rows_of_pairs), PREDS * max(len(r) for r in rows_of_pairs)
  batch = {k: np.zeros((rows, LENGTH), np.int32)
           for k in ("input_ids", "token_type_ids", "attention_mask", "segment_ids",
                     "position_ids")}
  batch.update(mlm_positions=np.zeros((rows, preds), np.int32),
               mlm_ids=np.zeros((rows, preds), np.int32),
               mlm_weights=np.zeros((rows, preds), np.float32),
               cls_positions=np.zeros((rows, SLOTS), np.int32),
               nsp_labels=np.zeros((rows, SLOTS), np.int32),
               nsp_weights=np.zeros((rows, SLOTS), np.float32),
               example_weights=np.ones(rows, np.float32))
  for r, members in enumerate(rows_of_pairs):
    start = 0
    for j, index in enumerate(members):
      p = pairs[index]
      n = len(p["ids"])
      span = slice(start, start + n)
      batch["input_ids"][r, span] = p["ids"]
      batch["token_type_ids"][r, span] = p["types"]
      batch["attention_mask"][r, span] = 1
      batch["segment_ids"][r, span] = j + 1
      batch["position_ids"][r, span] = np.arange(n)
      preds_of_pair = slice(j * PREDS, (j + 1) * PREDS)
      batch["mlm_positions"][r, preds_of_pair] = p["positions"] + start
      batch["mlm_ids"][r, preds_of_pair] = p["labels"]
      batch["mlm_weights"][r, preds_of_pair] = 1.0
      batch["cls_positions"][r, j] = start
      batch["nsp_labels"][r, j] = p["nsp"]
      batch["nsp_weights"][r, j] = 1.0
      start += n
  return batch


def model_config(**overrides):
  cfg = base.get_config().model
  # A large initializer_range: with BERT's 0.02 every residual branch starts near zero,
  # which would hide a pair that sees its neighbours.
  cfg.update(num_layers=2, hidden_size=32, num_heads=4, mlp_dim=64,
             max_position_embeddings=32, initializer_range=0.2)
  cfg.update(overrides)
  return cfg


UNPACKED_KEYS = ("input_ids", "token_type_ids", "attention_mask", "mlm_positions")
PACKED_KEYS = UNPACKED_KEYS + ("segment_ids", "position_ids", "cls_positions")


def forward(model, variables, inputs):
  """model.apply, jitted: one compiled program per input structure."""
  return jax.jit(lambda v, x: model.apply(v, *x, deterministic=True))(variables, inputs)


@pytest.mark.parametrize("overrides", [
    {}, dict(pre_ln=True), dict(alibi=True), dict(scan_layers=True)],
    ids=["post_ln", "pre_ln", "alibi", "scan_layers"])
def test_packed_pairs_compute_what_each_pair_computes_alone(overrides):
  pairs = make_pairs()
  model = build_model(model_config(**overrides), VOCAB)
  unpacked, packed = unpacked_batch(pairs), packed_batch(pairs)
  key = jax.random.key(0, impl="rbg")
  variables = model.init(key, *(unpacked[k] for k in UNPACKED_KEYS))
  # The same params with and without packing: one tree, the same values.
  jax.tree.map(np.testing.assert_array_equal, variables,
               model.init(key, *(packed[k] for k in PACKED_KEYS)))

  mlm_alone, nsp_alone = forward(model, variables, tuple(unpacked[k] for k in UNPACKED_KEYS))
  mlm_packed, nsp_packed = forward(model, variables, tuple(packed[k] for k in PACKED_KEYS))
  assert nsp_alone.shape == (len(pairs), 2)
  assert nsp_packed.shape == (len(ROWS_OF_PAIRS), SLOTS, 2)
  for r, members in enumerate(ROWS_OF_PAIRS):
    for j, index in enumerate(members):
      np.testing.assert_allclose(mlm_packed[r, j * PREDS:(j + 1) * PREDS],
                                 mlm_alone[index], atol=1e-5, rtol=1e-5)
      np.testing.assert_allclose(nsp_packed[r, j], nsp_alone[index], atol=1e-5, rtol=1e-5)

  # The check has teeth: without segment_ids the pairs see each other.
  no_segments = dict(packed, segment_ids=None)
  mlm_leaky, _ = forward(model, variables, tuple(no_segments[k] for k in PACKED_KEYS))
  assert np.abs(mlm_leaky[0, PREDS:2 * PREDS] - mlm_alone[1]).max() > 1e-3


def task_config(packing, objective="nsp"):
  config = base.get_config()
  config.model.update(model_config())
  config.data.update(vocab_size=VOCAB, max_seq_len=LENGTH, sentence_objective=objective,
                     packing=packing, max_pairs_per_row=SLOTS,
                     max_predictions_per_seq=PREDS * (3 if packing else 1))
  config.train.update(batch_size=2, num_steps=10)
  return config


def drop_sentence_keys(batch):
  return {k: v for k, v in batch.items()
          if k not in ("nsp_labels", "nsp_weights", "cls_positions")}


@pytest.mark.parametrize("objective", ["nsp", "none"])
def test_packed_loss_equals_the_unpacked_loss_of_the_same_pairs(objective):
  """MLM mean over all masked positions, sentence mean over pairs: the denominators
  count pairs, not rows."""
  pairs = make_pairs(seed=1)
  unpacked, packed = unpacked_batch(pairs), packed_batch(pairs)
  if objective == "none":
    unpacked, packed = drop_sentence_keys(unpacked), drop_sentence_keys(packed)
  results = {}
  for packing, batch in ((False, unpacked), (True, packed)):
    task = tasks.get(task_config(packing, objective))
    assert set(batch) == set(task.batch_spec()), "the hand-built batch follows the spec"
    model = task.build_model(VOCAB)
    params = nn.unbox(model.init(jax.random.key(0, impl="rbg"),
                                 *task.model_inputs(task.dummy_batch()))["params"])
    loss, sums = jax.jit(lambda p, b, task=task, model=model: task.loss_and_sums(
        model, p, b, deterministic=True, denominators=task.denominators(b)))(params, batch)
    results[packing] = params, float(loss), jax.device_get(sums)
  (params_u, loss_u, sums_u), (params_p, loss_p, sums_p) = results[False], results[True]
  jax.tree.map(np.testing.assert_array_equal, params_u, params_p)
  assert set(sums_u) == set(sums_p)
  np.testing.assert_allclose(loss_p, loss_u, rtol=1e-5, atol=1e-5)
  for name in sums_u:
    np.testing.assert_allclose(sums_p[name], sums_u[name], rtol=1e-5, atol=1e-5)
  if objective == "nsp":
    assert sums_p["nsp_weight_sum"] == len(pairs)


def test_train_step_on_a_packed_batch_is_finite_and_counts_real_tokens():
  config = task_config(True)
  task = tasks.get(config)
  model = task.build_model(VOCAB)
  tx, schedule = optim.make_optimizer(config.optim, config.train.num_steps)
  params = nn.unbox(model.init(jax.random.key(0, impl="rbg"),
                               *task.model_inputs(task.dummy_batch()))["params"])
  state = state_lib.TrainState(step=jax.numpy.zeros((), jax.numpy.int32), params=params,
                               opt_state=tx.init(params), rng=jax.random.key(1))
  step = jax.jit(functools.partial(step_lib.train_step, task=task, model=model, tx=tx,
                                   schedule=schedule))
  batch = packed_batch(make_pairs(seed=2))
  state, sums = step(state, batch)
  summary = step_lib.summarize(jax.device_get(sums), task)
  assert np.isfinite(summary["loss"]) and summary["nsp_loss"] > 0, summary
  assert float(sums["real_tokens"]) == batch["attention_mask"].sum() == sum(LENGTHS)


def test_tokens_per_sec_counts_real_tokens_and_padded_tokens_per_sec_all():
  # Two steps of 2 rows x 24 positions, 38 of them real, in 2 seconds.
  rates = train.throughput({"real_tokens": np.float32(38)}, 2, 2.0, 2 * LENGTH)
  assert rates == {"steps_per_sec": 1.0, "tokens_per_sec": 19.0,
                   "padded_tokens_per_sec": 48.0}


def test_batch_spec_with_packing():
  data = task_config(True).data
  spec = pretrain.batch_spec(data)
  assert spec["segment_ids"] == ((LENGTH,), np.int32)
  assert spec["position_ids"] == ((LENGTH,), np.int32)
  assert spec["cls_positions"] == ((SLOTS,), np.int32)
  assert spec["nsp_labels"] == ((SLOTS,), np.int32)
  assert spec["nsp_weights"] == ((SLOTS,), np.float32)
  assert spec["example_weights"] == ((), np.float32)
  data.sentence_objective = "none"
  assert not {"cls_positions", "nsp_labels", "nsp_weights"} & set(pretrain.batch_spec(data))
  assert "segment_ids" in pretrain.batch_spec(data)
  # Without packing: today's spec, key for key.
  assert set(pretrain.batch_spec(task_config(False).data)) == set(UNPACKED_KEYS) | {
      "mlm_ids", "mlm_weights", "nsp_labels", "example_weights"}


def test_analytic_flops_pool_every_pair_slot():
  flops = lambda packing: tasks.get(task_config(packing)).analytic_flops(1)[1]
  h, rows = 32, 2
  extra_preds = rows * (3 - 1) * PREDS * 2 * (h * h + VOCAB * h) * 3
  extra_slots = rows * (SLOTS - 1) * 2 * (h * h + 2 * h) * 3
  assert flops(True) - flops(False) == extra_preds + extra_slots


@pytest.mark.parametrize("change, message", [
    (dict(encoder="lstm"), "config.data.packing=True needs the transformer encoder"),
    (dict(packing="yes"), "config.data.packing='yes' is not allowed"),
    (dict(max_pairs_per_row=0), "config.data.max_pairs_per_row=0 is not allowed"),
])
def test_validation_refuses_bad_packing(change, message):
  config = task_config(True)
  if "encoder" in change:
    config.model.encoder = change.pop("encoder")
  for key, value in change.items():
    del config.data[key]  # the ConfigDict would refuse a value of another type
    config.data[key] = value
  with pytest.raises(errors.ConfigError, match=message) as failure:
    validation.check_data(config.data, config.model)
  assert "\n" not in str(failure.value)
  if message.startswith("config.data.packing=True"):
    assert "config.model.encoder='lstm'" in str(failure.value)


def test_validation_accepts_packing_and_its_absence():
  validation.check_data(task_config(True).data, task_config(True).model)
  old = task_config(False).data
  del old["packing"], old["max_pairs_per_row"]  # a config saved before the keys
  validation.check_data(old, task_config(False).model)
  assert not tasks.get(task_config(False)).packing


def train_losses(config, batch, **mesh_shape):
  """The logged loss of three train steps on `mesh_shape`, via the very jitted step that
  train.run uses (state.jit_train_step)."""
  devices = jax.devices()[:int(np.prod(list(mesh_shape.values())))]
  mesh = sharding.create_mesh(ml_collections.ConfigDict(mesh_shape), devices=devices)
  task = tasks.get(config)
  model = task.build_model(VOCAB)
  tx, schedule = optim.make_optimizer(config.optim, config.train.num_steps)
  losses = []
  with jax.set_mesh(mesh), nn.logical_axis_rules(sharding.config_rules(config, mesh)):
    _, shardings, init = state_lib.abstract_state_and_shardings(task, model, tx, mesh)
    state = jax.jit(lambda rng: nn.unbox(init(rng)), out_shardings=shardings)(
        jax.random.PRNGKey(0))
    step = state_lib.jit_train_step(task, model, tx, schedule, shardings, mesh)
    for _ in range(3):  # the first at learning rate 0 (warm-up)
      state, sums = step(state, sharding.global_batch(batch, mesh))
      losses.append(step_lib.summarize(jax.device_get(sums), task)["loss"])
  return losses


def test_packed_rows_train_alike_on_one_device_and_a_mesh(capfd):
  """[B, S] inputs shard like any batch, and the per-row attention bias and position
  lookup partition without XLA replicating anything."""
  config = task_config(True)
  config.model.update(num_layers=1, dropout_rate=0.0, attention_dropout_rate=0.0)
  config.train.batch_size = 4
  config.optim.update(learning_rate=1e-2, warmup_steps=1)
  batch = packed_batch(make_pairs(seed=3), ((0, 1, 2), (3, 4), (1, 3), (2, 0, 4)))
  one = train_losses(config, batch, data=1, fsdp=1, tensor=1)
  many = train_losses(config, batch, data=2, fsdp=2, tensor=2)
  assert np.all(np.isfinite(one)) and one[2] != one[0]
  np.testing.assert_allclose(many, one, rtol=1e-5)
  assert "Involuntary full rematerialization" not in capfd.readouterr().err
