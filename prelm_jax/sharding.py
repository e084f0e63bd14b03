"""Device mesh, logical-axis rules and the NamedShardings of state and batches.

The model names every weight and activation axis logically (vocab, embed, heads, ...);
one rules list maps those names onto mesh axes, so data parallelism, FSDP and tensor
parallelism are chosen by the rules and the mesh sizes alone.
"""
import math

import flax.linen as nn
import jax
import numpy as np
from jax.experimental import mesh_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

MESH_AXES = ("data", "fsdp", "tensor")

# Megatron-style: heads and the MLP hidden are split over `tensor`; weights' embed axis
# over `fsdp` (ZeRO-3: params and optimizer state); the batch over data and fsdp.
# Activations have their own names so FSDP on `embed` never shards activations.
DEFAULT_RULES = (
    ("activation_batch", ("data", "fsdp")),
    ("activation_length", None),
    ("activation_embed", None),
    ("activation_heads", "tensor"),
    ("activation_kv", None),
    ("activation_mlp", "tensor"),
    ("activation_vocab", "tensor"),
    ("vocab", "tensor"),
    ("embed", "fsdp"),
    ("heads", "tensor"),
    ("kv", None),
    ("mlp", "tensor"),
)
BATCH_AXES = ("data", "fsdp")


class MeshError(ValueError):
  """A mesh that does not fit the devices."""


def mesh_shape(mesh_cfg, num_devices):
  """Resolves config sizes (one may be -1 = the rest) to a tuple over MESH_AXES."""
  sizes = [int(mesh_cfg[a]) for a in MESH_AXES]
  fill = [a for a, s in zip(MESH_AXES, sizes) if s == -1]
  if len(fill) > 1:
    raise MeshError(f"only one mesh axis may be -1, got {', '.join(fill)}; "
                    "give the others explicit sizes")
  known = math.prod(s for s in sizes if s != -1)
  if any(s == 0 or s < -1 for s in sizes):
    raise MeshError(f"mesh sizes must be positive or -1, got {dict(zip(MESH_AXES, sizes))}")
  if fill:
    if num_devices % known:
      raise MeshError(
          f"mesh {dict(zip(MESH_AXES, sizes))}: {num_devices} devices are not divisible "
          f"by the fixed axes' product {known}; choose sizes whose product divides {num_devices}")
    sizes = [num_devices // known if s == -1 else s for s in sizes]
  if math.prod(sizes) != num_devices:
    raise MeshError(
        f"mesh {dict(zip(MESH_AXES, sizes))} has {math.prod(sizes)} devices but "
        f"{num_devices} are available; make the sizes multiply to {num_devices} "
        "(or set one axis to -1)")
  return tuple(sizes)


def create_mesh(mesh_cfg, devices=None):
  """Builds a Mesh over MESH_AXES with Auto axis types (linen constraints need Auto)."""
  devices = jax.devices() if devices is None else devices
  shape = mesh_shape(mesh_cfg, len(devices))
  try:
    device_array = mesh_utils.create_device_mesh(shape, devices)
  except (ValueError, NotImplementedError, AssertionError):
    # CPU and odd topologies have no physical layout to respect.
    device_array = np.asarray(devices).reshape(shape)
  return Mesh(device_array, MESH_AXES,
              axis_types=(jax.sharding.AxisType.Auto,) * len(MESH_AXES))


def logical_shardings(abstract_boxed_tree, mesh, rules=DEFAULT_RULES):
  """NamedShardings for a tree whose leaves are nn.Partitioned (or plain: replicated)."""
  specs = nn.get_partition_spec(abstract_boxed_tree)
  return nn.logical_to_mesh_sharding(specs, mesh, rules)


def batch_sharding(mesh):
  """Leading (batch) axis split over the data-parallel axes, the rest replicated."""
  return NamedSharding(mesh, P(BATCH_AXES))


def data_parallel_size(mesh):
  return math.prod(mesh.shape[a] for a in BATCH_AXES)


def global_batch(local_batch, mesh):
  """Assembles each process's rows into global jax.Arrays sharded over the batch axes."""
  sharding = batch_sharding(mesh)
  return jax.tree.map(
      lambda x: jax.make_array_from_process_local_data(sharding, x), local_batch)
