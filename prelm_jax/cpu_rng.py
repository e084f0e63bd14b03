"""Dropout's random bits on CPU: jax's unrolled threefry lowering, not its rolled loop.

On CPU, jax lowers threefry2x32 (the PRNG behind every dropout mask) as a while loop over
its rounds, which keeps programs small and compiles fast. XLA cannot fuse that loop with
anything, so each mask costs several passes over memory: measured here, a dropout on
BERT-base's [32, 12, 128, 128] attention probabilities took 59 ms rolled and 12 ms
unrolled, and dropout was the largest part of the train step after the matmuls. The
unrolled lowering is the one jax itself uses on GPU and TPU; it computes the same
function, so the bits (and every result) are unchanged (tests/test_model.py pins them).

Registered once, when prelm_jax is imported. If a future jax moves these internals, the
rolled default stays and nothing else changes.
"""
from jax.interpreters import mlir


def use_unrolled_threefry_on_cpu():
  """Registers jax's unrolled threefry lowering for CPU; False if jax has none to reuse."""
  try:
    from jax._src.random import threefry2x32  # pylint: disable=g-import-not-at-top
  except ImportError:
    return False
  rule = getattr(threefry2x32, "_threefry2x32_lowering_rule", None)
  primitive = getattr(threefry2x32, "threefry2x32_p", None)
  if rule is None or primitive is None:
    return False
  mlir.register_lowering(primitive, rule, platform="cpu", inline=False)
  return True
