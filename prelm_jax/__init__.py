"""prelm_jax: BERT-style pre-training and fine-tuning in JAX/Flax."""
from prelm_jax import cpu_rng

cpu_rng.use_unrolled_threefry_on_cpu()
