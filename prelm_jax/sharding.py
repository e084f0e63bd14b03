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

from prelm_jax import errors

MESH_AXES = ("data", "fsdp", "tensor")

# Megatron-style: heads and the MLP hidden are split over `tensor`; weights' embed axis
# over `fsdp` (ZeRO-3: params and optimizer state); the batch over data and fsdp.
# Activations have their own names so FSDP on `embed` never shards activations.
# The default of config.sharding.logical_axis_rules (experiments/base.py); runs read the
# config's list through config_rules().
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
    # The stacked leading axis of scanned layers (config.model.scan_layers).
    ("layers", None),
)
BATCH_AXES = ("data", "fsdp")


class MeshError(errors.PrelmError):
  """A mesh that does not fit the devices."""


def dcn_shape(mesh_cfg):
  """The outer (between slices / nodes) part of each axis: config.mesh.dcn_<axis>."""
  sizes = tuple(int(mesh_cfg.get(f"dcn_{a}", 1)) for a in MESH_AXES)
  if any(s < 1 for s in sizes):
    raise MeshError(f"mesh dcn sizes must be >= 1, got "
                    f"{dict(zip(('dcn_' + a for a in MESH_AXES), sizes))}")
  return sizes


def mesh_shape(mesh_cfg, num_devices):
  """Resolves config sizes to a tuple over MESH_AXES: ICI size x DCN size per axis.

  The sizes data/fsdp/tensor (one may be -1 = the rest) describe one slice (or node);
  dcn_data/dcn_fsdp/dcn_tensor multiply them across slices, so each mesh axis is
  data * dcn_data etc. and num_devices = product(ici) * product(dcn).
  """
  dcn = dcn_shape(mesh_cfg)
  granules = math.prod(dcn)
  if granules == 1:
    return ici_shape(mesh_cfg, num_devices)
  if num_devices % granules:
    raise MeshError(
        f"mesh dcn sizes {dict(zip(('dcn_' + a for a in MESH_AXES), dcn))} make "
        f"{granules} slices, which do not divide the {num_devices} devices; use dcn "
        f"sizes whose product divides {num_devices}")
  ici = ici_shape(mesh_cfg, num_devices // granules)
  return tuple(i * d for i, d in zip(ici, dcn))


def ici_shape(mesh_cfg, num_devices):
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
  dcn = dcn_shape(mesh_cfg)
  if math.prod(dcn) > 1:
    device_array = hybrid_device_array(
        tuple(s // d for s, d in zip(shape, dcn)), dcn, devices)
  else:
    try:
      device_array = mesh_utils.create_device_mesh(shape, devices)
    except (ValueError, NotImplementedError, AssertionError):
      # CPU and odd topologies have no physical layout to respect.
      device_array = np.asarray(devices).reshape(shape)
  return Mesh(device_array, MESH_AXES,
              axis_types=(jax.sharding.AxisType.Auto,) * len(MESH_AXES))


def hybrid_device_array(ici, dcn, devices):
  """Devices for a multi-slice / multi-node mesh: each slice is one block of the mesh.

  TPU slices carry slice_index; GPU nodes (and multi-process CPU) are told apart by
  process. A single process simulating slices (tests) has neither, so consecutive
  device groups stand in for slices, laid out as create_hybrid_device_mesh would.
  """
  for by_process in (False, True):
    try:
      return mesh_utils.create_hybrid_device_mesh(
          ici, dcn, devices, process_is_granule=by_process)
    except (ValueError, NotImplementedError, AssertionError):
      pass
  # [dcn..., ici...] -> interleave (dcn_0, ici_0, dcn_1, ici_1, ...) -> dcn_i * ici_i.
  array = np.asarray(devices).reshape(tuple(dcn) + tuple(ici))
  n = len(ici)
  array = array.transpose([k for i in range(n) for k in (i, n + i)])
  return array.reshape(tuple(d * i for d, i in zip(dcn, ici)))


def normalize_rules(rules):
  """Rules as hashable ((name, None | axis | (axes...)), ...) pairs.

  A config read back from config.json holds lists where the config had tuples.
  """
  def axes(value):
    return tuple(value) if isinstance(value, (list, tuple)) else value
  return tuple((str(name), axes(value)) for name, value in rules)


def config_rules(config, mesh=None):
  """config.sharding.logical_axis_rules (DEFAULT_RULES if absent), checked against mesh.

  Args:
    config: the run's ConfigDict; configs saved before the key existed get DEFAULT_RULES.
    mesh: when given, every mesh axis a rule names must be one of mesh.axis_names.

  Returns:
    The rules as a tuple of (logical name, mesh axes) pairs.

  Raises:
    MeshError: a rule names a mesh axis the mesh does not have.
  """
  section = config.get("sharding") or {}
  rules = normalize_rules(section.get("logical_axis_rules", DEFAULT_RULES))
  if mesh is not None:
    known = tuple(mesh.axis_names)
    for name, value in rules:
      for axis in value if isinstance(value, tuple) else (value,):
        if axis is not None and axis not in known:
          raise MeshError(
              f"config.sharding.logical_axis_rules maps {name!r} to mesh axis {axis!r}, "
              f"but the mesh {dict(mesh.shape)} has only {', '.join(known)}; use one of "
              "those axes (or None to replicate)")
  return rules


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
