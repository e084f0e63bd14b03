"""The MFU denominator: this machine's peak FLOP/s for a compute dtype.

On CPU there is no published figure that a jitted step can reach, so the peak is
measured: jitted matmuls of large squares (2048^2 and 4096^2 by default), median of
several runs after a warm-up, the best size counting. On GPU/TPU it is the chip's
published dense bf16 peak, picked from jax.devices()[0].device_kind (matmuls of that
size would measure less than the chip can do, and MFU is quoted against the datasheet).

  python benchmarks/peak.py [--sizes 2048,4096] [--runs 5]    # prints JSON
"""
import argparse
import json
import statistics
import time

# Dense bf16 FLOP/s from the vendors' datasheets (no sparsity).
PUBLISHED_BF16 = (  # (substring of device_kind, lower case) -> FLOP/s; first match wins
    ("h200", 989e12), ("h100", 989e12), ("a100", 312e12),
    ("v5 lite", 197e12), ("v5e", 197e12), ("v5p", 459e12), ("v4", 275e12),
)


def published_peak(device_kind):
  """The datasheet's dense bf16 FLOP/s of a GPU/TPU, or None when unknown."""
  kind = device_kind.lower()
  for name, flops in PUBLISHED_BF16:
    if name in kind:
      return flops
  return None


def matmul_rate(size, dtype, runs=5):
  """FLOP/s of a jitted [size, size] @ [size, size] in `dtype` (median of `runs`)."""
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  ka, kb = jax.random.split(jax.random.PRNGKey(0))
  a = jax.random.normal(ka, (size, size), jnp.float32).astype(dtype)
  b = jax.random.normal(kb, (size, size), jnp.float32).astype(dtype)
  matmul = jax.jit(jnp.matmul)
  matmul(a, b).block_until_ready()  # compile + warm-up
  times = []
  for _ in range(runs):
    start = time.perf_counter()
    matmul(a, b).block_until_ready()
    times.append(time.perf_counter() - start)
  return 2 * size**3 / statistics.median(times)


def measure(sizes=(2048, 4096), dtypes=("float32", "bfloat16"), runs=5):
  """{dtype: {size: FLOP/s}} measured here."""
  return {dtype: {str(size): matmul_rate(size, dtype, runs) for size in sizes}
          for dtype in dtypes}


def peak(dtype="float32", sizes=(2048, 4096), runs=5):
  """(FLOP/s, where it comes from) for MFU of a step computing in `dtype`.

  CPU: the best measured matmul rate in `dtype`. GPU/TPU: the published dense bf16
  peak whatever `dtype` (MFU is quoted against it).
  """
  import jax  # pylint: disable=g-import-not-at-top
  device = jax.devices()[0]
  if device.platform != "cpu":
    flops = published_peak(device.device_kind)
    if flops is None:
      raise ValueError(f"no published peak for {device.device_kind!r}; add it to "
                       "benchmarks/peak.py PUBLISHED_BF16")
    return flops, f"published dense bf16 peak of {device.device_kind}"
  rates = measure(sizes, (dtype,), runs)[dtype]
  best = max(rates, key=rates.get)
  return rates[best], f"measured: jitted {dtype} matmul {best}^2 on {device.device_kind}"


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--sizes", default="2048,4096")
  parser.add_argument("--runs", type=int, default=5)
  args = parser.parse_args()
  import jax  # pylint: disable=g-import-not-at-top
  sizes = tuple(int(s) for s in args.sizes.split(","))
  device = jax.devices()[0]
  out = {"platform": device.platform, "device_kind": device.device_kind,
         "published_bf16_flops": published_peak(device.device_kind),
         "measured_flops": measure(sizes, runs=args.runs)}
  print(json.dumps(out, indent=1))


if __name__ == "__main__":
  main()
