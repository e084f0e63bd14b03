"""Data parallel, FSDP and tensor parallel on 8 simulated CPU devices.

Each mesh must train exactly like one device (the rules change where values live,
never what they are) and shard params and optimizer state as the rules say. Dropout is
0 here: a dropout mask depends on how the rng is partitioned unless
jax_threefry_partitionable is set, so a deterministic model gives an exact comparison.
The batches are synthetic (fixed numpy), so no corpus is needed.
"""
import contextlib
import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from experiments import base
from prelm_jax import checkpointing
from prelm_jax import errors
from prelm_jax import optim
from prelm_jax import sharding
from prelm_jax import state as state_lib
from prelm_jax import tasks
from prelm_jax import validation
from prelm_jax import train_step as step_lib
from prelm_jax.model import pretraining

VOCAB, HIDDEN, HEADS, MLP = 100, 32, 4, 64
# Embedding rows: VOCAB padded to base.py's vocab_pad_multiple (64), so a vocabulary of
# 100, which 4 does not divide, still splits over tensor=4.
ROWS = 128
SEQ, PREDS = 32, 6
# Compiling dominates these tests; XLA's CPU backend at -O0 compiles ~2x faster. It is
# still IEEE float32, and every run compared here uses the same options.
FAST_COMPILE = {"xla_backend_optimization_level": 0,
                "xla_llvm_disable_expensive_passes": True}


def small_config(batch_size=16, **model):
  """A 1-layer model whose dims divide by 8 (fsdp) and 4 (tensor); no dropout."""
  config = base.get_config()
  config.model.update(num_layers=1, hidden_size=HIDDEN, num_heads=HEADS, mlp_dim=MLP,
                      max_position_embeddings=SEQ, dropout_rate=0.0,
                      attention_dropout_rate=0.0)
  config.model.update(model)
  config.data.update(vocab_size=VOCAB, max_seq_len=SEQ, max_predictions_per_seq=PREDS)
  config.train.update(num_steps=10, batch_size=batch_size, eval_batch_size=batch_size)
  config.optim.update(learning_rate=1e-2, warmup_steps=1)
  return config


def synthetic_batch(seed, rows):
  """A fixed pre-training batch with uneven padding and masked-position counts."""
  rng = np.random.default_rng(seed)
  lengths = rng.integers(SEQ // 2, SEQ + 1, rows)
  attention = (np.arange(SEQ)[None] < lengths[:, None]).astype(np.int32)
  # Rows predict 1..PREDS positions, so micro-batch means != the whole batch's mean.
  num_preds = rng.integers(1, PREDS + 1, rows)
  return {
      "input_ids": (rng.integers(5, VOCAB, (rows, SEQ)) * attention).astype(np.int32),
      "token_type_ids": (np.arange(SEQ)[None] >= lengths[:, None] // 2).astype(np.int32),
      "attention_mask": attention,
      "mlm_positions": rng.integers(1, SEQ // 2, (rows, PREDS)).astype(np.int32),
      "mlm_ids": rng.integers(5, VOCAB, (rows, PREDS)).astype(np.int32),
      "mlm_weights": (np.arange(PREDS)[None] < num_preds[:, None]).astype(np.float32),
      "nsp_labels": rng.integers(0, 2, rows).astype(np.int32),
      "example_weights": np.ones(rows, np.float32),
  }


def make_mesh(data=1, fsdp=1, tensor=1):
  cfg = ml_collections.ConfigDict(dict(data=data, fsdp=fsdp, tensor=tensor))
  n = data * fsdp * tensor
  return sharding.create_mesh(cfg, devices=jax.devices()[:n])


class Trainer:
  """The pieces train.run builds, on a given mesh, without data or a workdir."""

  def __init__(self, config, mesh, init=True):
    self.config, self.mesh = config, mesh
    self.rules = sharding.config_rules(config, mesh)
    self.task = tasks.get(config)
    self.model = self.task.build_model(config.data.vocab_size)
    self.tx, schedule = optim.make_optimizer(config.optim, config.train.num_steps)
    with self.context():
      self.abstract, self.shardings, init = state_lib.abstract_state_and_shardings(
          self.task, self.model, self.tx, mesh)
      if init:  # a restore target needs only the abstract state
        self.state = jax.jit(lambda rng: nn.unbox(init(rng)), out_shardings=self.shardings,
                             compiler_options=FAST_COMPILE)(jax.random.PRNGKey(config.seed))
      # The very function train.run jits (state.jit_train_step), not a copy.
      self.step_fn = state_lib.jit_train_step(self.task, self.model, self.tx, schedule,
                                              self.shardings, mesh,
                                              compiler_options=FAST_COMPILE)

  @contextlib.contextmanager
  def context(self):
    with jax.set_mesh(self.mesh), nn.logical_axis_rules(self.rules):
      yield

  def train(self, batches):
    """Steps over numpy batches; returns the logged loss of each step."""
    self.summaries = []
    with self.context():
      for batch in batches:
        self.state, sums = self.step_fn(self.state, sharding.global_batch(batch, self.mesh))
        self.summaries.append(step_lib.summarize(jax.device_get(sums), self.task))
    return [summary["loss"] for summary in self.summaries]


def leaves_named(tree, name):
  """The leaves whose tree path mentions `name` (params and Adam's mu/nu alike)."""
  return [leaf for path, leaf in jax.tree_util.tree_leaves_with_path(tree)
          if name in jax.tree_util.keystr(path)]


def _unbox(tree):
  is_box = lambda x: isinstance(x, nn.Partitioned)
  return jax.tree.map(lambda x: x.value if is_box(x) else x, tree, is_leaf=is_box)


def shard_shape(array):
  return array.addressable_shards[0].data.shape


BATCHES = [synthetic_batch(seed, 16) for seed in range(5)]


@pytest.fixture(scope="module")
def single_device_losses():
  return Trainer(small_config(), make_mesh()).train(BATCHES)


@pytest.mark.parametrize("mesh_sizes, model", [
    (dict(data=8), {}), (dict(fsdp=8), {}), (dict(data=2, tensor=4), {}),
    # Rematerialisation recomputes the same values: checked here, not in its own compile.
    (dict(data=2, fsdp=2, tensor=2), dict(remat_policy="full"))],
    ids=["data=8", "fsdp=8", "data=2,tensor=4", "data=2,fsdp=2,tensor=2,remat=full"])
def test_mesh_trains_like_one_device_and_shards_as_the_rules_say(
    mesh_sizes, model, single_device_losses, capfd):
  capfd.readouterr()
  trainer = Trainer(small_config(**model), make_mesh(**mesh_sizes))
  losses = trainer.train(BATCHES)
  np.testing.assert_allclose(losses, single_device_losses, rtol=0, atol=1e-5)
  assert losses[-1] < losses[0]  # it did train
  # No weight or activation is silently replicated by the partitioner (XLA logs this
  # while compiling; the embedding lookups once caused it under fsdp x tensor).
  assert "Involuntary full rematerialization" not in capfd.readouterr().err

  fsdp, tensor = mesh_sizes.get("fsdp", 1), mesh_sizes.get("tensor", 1)
  params, opt_state = trainer.state.params, trainer.state.opt_state
  word = params["encoder"]["embeddings"]["word_embeddings"]["embedding"]
  query = params["encoder"]["layer_0"]["attention"]["query"]["kernel"]
  wi = params["encoder"]["layer_0"]["mlp"]["wi"]["kernel"]
  # vocab -> tensor, embed -> fsdp; query [embed, heads, kv]; wi [embed, mlp].
  assert shard_shape(word) == (ROWS // tensor, HIDDEN // fsdp)
  assert shard_shape(query) == (HIDDEN // fsdp, HEADS // tensor, HIDDEN // HEADS)
  assert shard_shape(wi) == (HIDDEN // fsdp, MLP // tensor)
  # Adam's mu and nu are sharded like the params they follow (ZeRO-3 under fsdp).
  moments = leaves_named(opt_state, "['word_embeddings']")
  assert len(moments) == 2
  for moment in moments:
    assert shard_shape(moment) == (ROWS // tensor, HIDDEN // fsdp)
    assert moment.sharding.is_equivalent_to(word.sharding, 2)


def test_checkpoint_restores_onto_another_mesh_and_one_device(tmp_path):
  saver = Trainer(small_config(), make_mesh(fsdp=8))
  saver.train(BATCHES[:1])  # a step, so Adam's moments are not zeros
  mngr = checkpointing.manager(str(tmp_path), 2)
  checkpointing.save(mngr, saver.state, data_position=1, vocab_size=600)
  mngr.wait_until_finished()
  expected = jax.device_get(saver.state)
  for sizes, word_shard in ((dict(data=2, tensor=4), (ROWS // 4, HIDDEN)),
                            (dict(), (ROWS, HIDDEN))):
    target = Trainer(small_config(), make_mesh(**sizes), init=False)
    restored, meta = checkpointing.restore(mngr, 1, target.abstract)
    assert meta["data_position"] == 1
    jax.tree.map(np.testing.assert_array_equal, jax.device_get(restored), expected)
    word = restored.params["encoder"]["embeddings"]["word_embeddings"]["embedding"]
    assert len(word.sharding.device_set) == len(target.mesh.devices.flat)
    assert shard_shape(word) == word_shard
  mngr.close()


def test_grad_accumulation_equals_one_big_batch():
  big = [synthetic_batch(10 + seed, 32) for seed in range(3)]
  mesh = dict(data=2, fsdp=2, tensor=2)
  one = Trainer(small_config(batch_size=32), make_mesh(**mesh))
  accum_config = small_config(batch_size=32)
  accum_config.train.grad_accum_steps = 4
  four = Trainer(accum_config, make_mesh(**mesh))
  np.testing.assert_allclose(four.train(big), one.train(big), rtol=0, atol=1e-5)
  # The gradient itself, not only its direction (Adam would hide a wrong scale).
  grad_norms = lambda t: [s["grad_norm"] for s in t.summaries]
  np.testing.assert_allclose(grad_norms(four), grad_norms(one), rtol=1e-5)
  jax.tree.map(functools.partial(np.testing.assert_allclose, rtol=0, atol=1e-5),
               jax.device_get(four.state.params), jax.device_get(one.state.params))


def test_bfloat16_compute_trains_with_float32_params_and_optimizer_state():
  trainer = Trainer(small_config(dtype="bfloat16"), make_mesh())
  losses = trainer.train([BATCHES[0]] * 10)
  assert losses[-1] < losses[0] - 0.5, losses
  for leaf in jax.tree.leaves(trainer.state.params):
    assert leaf.dtype == jnp.float32
  for leaf in jax.tree.leaves(trainer.state.opt_state):
    assert leaf.dtype in (jnp.float32, jnp.int32), leaf.dtype
  # The model computes in bfloat16 but hands the losses float32 logits.
  mlm_logits, nsp_logits = trainer.model.apply(
      {"params": jax.device_get(trainer.state.params)},
      *trainer.task.model_inputs(BATCHES[0]), deterministic=True)
  assert mlm_logits.dtype == nsp_logits.dtype == jnp.float32


def test_scanned_layers_compute_the_unscanned_function():
  config = small_config(num_layers=2)
  plain = pretraining.build_model(config.model, VOCAB)
  config.model.update(scan_layers=True, remat_policy="dots_saveable")
  scanned = pretraining.build_model(config.model, VOCAB)
  inputs = tasks.get(config).model_inputs(BATCHES[0])
  params = nn.unbox(plain.init(jax.random.PRNGKey(0), *inputs)["params"])
  # Same weights, stacked on a leading layers axis: what nn.scan's params look like.
  stacked = dict(params["encoder"])
  stacked["layers"] = jax.tree.map(lambda *xs: jnp.stack(xs), stacked.pop("layer_0"),
                                   stacked.pop("layer_1"))
  scanned_params = {**params, "encoder": stacked}
  expected = plain.apply({"params": params}, *inputs)
  # ...and exactly the tree (paths and shapes) that the scanned model initialises.
  shapes = lambda tree: jax.tree.map(lambda x: x.shape, tree)
  assert shapes(_unbox(jax.eval_shape(scanned.init, jax.random.PRNGKey(0), *inputs)
                       ["params"])) == shapes(scanned_params)
  got = scanned.apply({"params": scanned_params}, *inputs)
  jax.tree.map(functools.partial(np.testing.assert_allclose, rtol=0, atol=1e-5),
               got, expected)


def test_scanned_layers_shard_and_train_on_a_mesh():
  trainer = Trainer(small_config(num_layers=2, scan_layers=True,
                                 remat_policy="dots_saveable"),
                    make_mesh(fsdp=2, tensor=4))
  kernel = trainer.state.params["encoder"]["layers"]["attention"]["query"]["kernel"]
  # The stacked "layers" axis maps to None; the rest is sharded as unscanned.
  assert kernel.shape == (2, HIDDEN, HEADS, HIDDEN // HEADS)
  assert shard_shape(kernel) == (2, HIDDEN // 2, HEADS // 4, HIDDEN // HEADS)
  losses = trainer.train([BATCHES[0]] * 4)
  assert losses[-1] < losses[0] - 0.1, losses


def test_rule_naming_a_missing_mesh_axis_is_refused():
  config = small_config()
  config.sharding.logical_axis_rules = (("heads", "model"),) + sharding.DEFAULT_RULES
  with pytest.raises(sharding.MeshError,
                     match=r"maps 'heads' to mesh axis 'model', but the mesh "
                           r"\{'data': 8, 'fsdp': 1, 'tensor': 1\} has only data, fsdp, "
                           r"tensor; use one of those"):
    validation.check(config, make_mesh(data=8))


def test_batch_that_does_not_split_into_micro_batches_is_refused():
  config = small_config(batch_size=16)
  config.train.grad_accum_steps = 4
  with pytest.raises(errors.ConfigError,
                     match=r"batch_size=16 does not split into grad_accum_steps=4 .* "
                           r"data-parallel size 8; .* multiple of 32"):
    validation.check(config, make_mesh(data=8))


def test_batch_not_divisible_by_data_parallel_size_is_refused():
  config = small_config(batch_size=12)
  with pytest.raises(errors.ConfigError, match=r"batch_size=12 .* data-parallel size"):
    validation.check(config, make_mesh(data=8))


def test_geglu_mlm_only_model_trains_like_one_device_on_fsdp_and_tensor():
  config = small_config(mlp_activation="geglu")
  config.data.sentence_objective = "none"
  batches = [{k: v for k, v in b.items() if k != "nsp_labels"} for b in BATCHES[:3]]
  want = Trainer(config, make_mesh()).train(batches)
  trainer = Trainer(config, make_mesh(data=2, fsdp=2, tensor=2))
  np.testing.assert_allclose(trainer.train(batches), want, rtol=0, atol=1e-5)
  params = trainer.state.params
  assert "nsp_head" not in params
  # wi [embed, 2 (gate, value), mlp]: each tensor shard holds matching gate and value.
  wi = params["encoder"]["layer_0"]["mlp"]["wi"]["kernel"]
  assert shard_shape(wi) == (HIDDEN // 2, 2, MLP // 2)
  assert set(trainer.summaries[-1]) >= {"loss", "mlm_loss", "mlm_accuracy"}
  assert not any(k.startswith(("nsp_", "sop_")) for k in trainer.summaries[-1])
