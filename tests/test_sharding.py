import jax
import ml_collections
import pytest

from prelm_jax import sharding


def mesh_cfg(data=-1, fsdp=1, tensor=1):
  return ml_collections.ConfigDict(dict(data=data, fsdp=fsdp, tensor=tensor))


@pytest.mark.parametrize("cfg, shape", [
    (mesh_cfg(), (8, 1, 1)), (mesh_cfg(2, -1, 2), (2, 2, 2)), (mesh_cfg(1, 8, 1), (1, 8, 1))])
def test_mesh_shape_fills_minus_one(cfg, shape):
  assert sharding.mesh_shape(cfg, 8) == shape


@pytest.mark.parametrize("cfg, message", [
    (mesh_cfg(2, 2, 1), "has 4 devices but 8 are available"),
    (mesh_cfg(3, -1, 1), "not divisible"),
    (mesh_cfg(-1, -1, 1), "only one mesh axis may be -1"),
])
def test_mesh_that_does_not_fit_is_refused(cfg, message):
  with pytest.raises(sharding.MeshError, match=message):
    sharding.mesh_shape(cfg, 8)


def test_create_mesh_on_8_cpu_devices():
  mesh = sharding.create_mesh(mesh_cfg(2, 2, 2))
  assert mesh.shape == {"data": 2, "fsdp": 2, "tensor": 2}
  assert len(jax.devices()) == 8
  assert sharding.data_parallel_size(mesh) == 4


def test_dcn_sizes_multiply_the_per_slice_axes():
  cfg = ml_collections.ConfigDict(dict(data=1, fsdp=-1, tensor=1, dcn_data=2, dcn_fsdp=1,
                                       dcn_tensor=1))
  assert sharding.mesh_shape(cfg, 8) == (2, 4, 1)
  cfg.dcn_tensor = 3
  with pytest.raises(sharding.MeshError, match="make 6 slices, which do not divide the 8"):
    sharding.mesh_shape(cfg, 8)


def test_hybrid_mesh_keeps_each_slice_in_one_block():
  # One process simulates 2 slices of 4 devices: data across slices, fsdp within.
  cfg = ml_collections.ConfigDict(dict(data=1, fsdp=2, tensor=2, dcn_data=2, dcn_fsdp=1,
                                       dcn_tensor=1))
  mesh = sharding.create_mesh(cfg)
  assert mesh.shape == {"data": 2, "fsdp": 2, "tensor": 2}
  devices = jax.devices()
  # Slice s = devices[4s:4s+4] fills data row s: fsdp/tensor traffic stays in a slice.
  for s in range(2):
    assert set(mesh.devices[s].flat) == set(devices[4 * s:4 * s + 4])
