"""Losses: hand-computed values, accuracy counts, weights, aggregation."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from prelm_jax import losses

# Jitted: one program per shape runs ~5x faster here than eager op-by-op.
mlm_loss = jax.jit(losses.mlm_loss)
nsp_loss = jax.jit(losses.nsp_loss)


def _xent(row, label):
  """-log softmax(row)[label], written out."""
  return -(row[label] - math.log(sum(math.exp(v) for v in row)))


def test_mlm_loss_matches_hand_computed_values():
  # One sequence, three slots, vocab 3; the last slot is padding.
  logits = np.array([[[2.0, 0.0, -1.0], [0.5, 1.5, 0.0], [9.0, 0.0, 0.0]]],
                    np.float32)
  labels = np.array([[0, 2, 1]])
  weights = np.array([[1.0, 1.0, 0.0]])
  out = mlm_loss(logits, labels, weights)
  expected = _xent([2.0, 0.0, -1.0], 0) + _xent([0.5, 1.5, 0.0], 2)
  assert float(out['loss_sum']) == pytest.approx(expected, rel=1e-6)
  # Slot 0 argmax 0 == label: correct; slot 1 argmax 1 != 2: wrong.
  assert float(out['correct_sum']) == 1.0
  assert float(out['weight_sum']) == 2.0


def test_nsp_loss_matches_hand_computed_values():
  logits = np.array([[1.0, -1.0], [0.0, 3.0], [0.2, 0.1]], np.float32)
  labels = np.array([0, 0, 1])
  out = nsp_loss(logits, labels, np.ones(3))
  expected = (_xent([1.0, -1.0], 0) + _xent([0.0, 3.0], 0)
              + _xent([0.2, 0.1], 1))
  assert float(out['loss_sum']) == pytest.approx(expected, rel=1e-6)
  assert float(out['correct_sum']) == 1.0
  assert float(out['weight_sum']) == 3.0


def test_padding_slots_contribute_nothing_whatever_they_hold():
  rng = np.random.default_rng(0)
  logits = rng.normal(size=(2, 4, 7)).astype(np.float32)
  labels = rng.integers(0, 7, size=(2, 4))
  weights = np.array([[1, 1, 0, 0], [1, 0, 0, 0]], np.float32)
  ref = mlm_loss(logits, labels, weights)

  # Garbage at the padding slots: huge logits, out-of-range labels.
  logits2, labels2 = logits.copy(), labels.copy()
  logits2[weights == 0] = 1e4
  labels2[0, 2], labels2[0, 3], labels2[1, 1] = -1, 99, 7
  out = mlm_loss(logits2, labels2, weights)
  for k in ref:
    assert np.isfinite(out[k])
    np.testing.assert_allclose(out[k], ref[k], rtol=1e-6)
  assert float(out['weight_sum']) == 3.0
  # Gradients too: NaN in an unselected jnp.where branch still poisons them.
  grad = jax.grad(lambda l: mlm_loss(l, labels2, weights)['loss_sum'])(logits2)
  assert np.all(np.isfinite(grad)) and np.all(grad[weights == 0] == 0)

  # Same as evaluating only the real slots.
  real = weights > 0
  only = mlm_loss(logits[real][None], labels[real][None],
                         np.ones((1, 3)))
  for k in ref:
    np.testing.assert_allclose(ref[k], only[k], rtol=1e-6)


def test_sums_aggregate_over_half_batches():
  rng = np.random.default_rng(1)
  logits = rng.normal(size=(4, 5, 11)).astype(np.float32)
  labels = rng.integers(0, 11, size=(4, 5))
  weights = (rng.random((4, 5)) < 0.7).astype(np.float32)
  full = mlm_loss(logits, labels, weights)
  a = mlm_loss(logits[:2], labels[:2], weights[:2])
  b = mlm_loss(logits[2:], labels[2:], weights[2:])
  for k in full:
    np.testing.assert_allclose(a[k] + b[k], full[k], rtol=1e-6)

  nsp_logits = rng.normal(size=(4, 2)).astype(np.float32)
  nsp_labels = rng.integers(0, 2, size=4)
  nsp_weights = np.array([1, 1, 1, 0], np.float32)
  full = nsp_loss(nsp_logits, nsp_labels, nsp_weights)
  a = nsp_loss(nsp_logits[:2], nsp_labels[:2], nsp_weights[:2])
  b = nsp_loss(nsp_logits[2:], nsp_labels[2:], nsp_weights[2:])
  for k in full:
    np.testing.assert_allclose(a[k] + b[k], full[k], rtol=1e-6)


def test_loss_is_float32_for_bfloat16_logits():
  logits = jnp.zeros((1, 2, 5), jnp.bfloat16)
  out = mlm_loss(logits, np.zeros((1, 2), int), np.ones((1, 2)))
  assert all(v.dtype == jnp.float32 for v in out.values())
  assert float(out['loss_sum']) == pytest.approx(2 * math.log(5), rel=1e-6)


def test_cross_entropy_and_its_gradient_equal_optax():
  # losses picks the label's logit with a one-hot select (no scatter in the
  # backward pass); value and gradient must be optax's.
  import optax  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(0)
  logits = jnp.asarray(rng.normal(0, 3, (4, 5, 50)), jnp.float32)
  labels = jnp.asarray(rng.integers(0, 50, (4, 5)))
  ours = lambda x: jnp.sum(losses._cross_entropy(x, labels) * jnp.arange(20.).reshape(4, 5))
  theirs = lambda x: jnp.sum(optax.softmax_cross_entropy_with_integer_labels(x, labels)
                             * jnp.arange(20.).reshape(4, 5))
  np.testing.assert_allclose(losses._cross_entropy(logits, labels),
                             optax.softmax_cross_entropy_with_integer_labels(logits, labels),
                             rtol=1e-6, atol=1e-6)
  np.testing.assert_allclose(jax.grad(ours)(logits), jax.grad(theirs)(logits),
                             rtol=1e-6, atol=1e-6)
