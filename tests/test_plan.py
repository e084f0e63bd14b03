"""`prelm plan`: ahead-of-time compilation of the train step for a mesh, no corpus."""

import pytest

from prelm_jax import plan
from prelm_jax import registry


def test_bert_large_on_32_fsdp_devices_holds_a_32nd_of_params_and_optimizer_state():
  config = registry.load("bert_large")
  config.mesh.update(data=1, fsdp=32, tensor=1)
  # The tests run with 8 devices, so this compiles in a subprocess with 32 CPU devices.
  result = plan.plan(config, 32)
  assert result["devices"] == 32 and result["mesh"] == {"data": 1, "fsdp": 32, "tensor": 1}
  assert 330e6 < result["num_params"] < 340e6  # BERT-large with a 30522 vocabulary
  total = result["params_bytes_total"] + result["opt_state_bytes_total"]
  per_device = result["params_bytes_per_device"] + result["opt_state_bytes_per_device"]
  # f32 params, Adam's mu and nu, and a few int32 step counts.
  assert 0 <= total - 3 * 4 * result["num_params"] <= 64
  assert abs(per_device / (total / 32) - 1) < 0.05, (per_device, total / 32)
  # The compiled program takes the sharded state as its arguments, and donates it.
  mem = result["compiled_bytes_per_device"]
  assert per_device <= mem["argument"] <= per_device + result["batch_bytes_per_device"] + 4096
  assert mem["alias"] >= per_device * 0.99
  assert mem["temp"] > 0 and result["flops_per_device_compiled"] > 0
  # Backward ~ 2 x forward: the analytic count is close to 6 * N * tokens.
  assert 0.8 < result["flops_per_step_analytic"] / result["flops_per_step_6nt"] < 1.1
  lines = plan.report(result, plan.parse_bytes("16GiB"))
  assert lines[-1].startswith("Memory: fits in 16.000 GiB per device")
  assert plan.report(result, plan.parse_bytes("1GiB"))[-1].startswith("Memory: does NOT fit")


def test_cli_prints_the_plan_of_a_small_model(prelm_cli):
  proc = prelm_cli("plan", "--config", "bert_tiny_pydocs", "--mesh", "data=2,fsdp=2,tensor=2",
                   "--device-memory", "1GiB", "--config.model.num_layers=1",
                   "--config.train.batch_size=16", timeout=300)
  assert proc.returncode == 0, proc.stderr
  out = proc.stdout
  assert "on 8 cpu devices, mesh {'data': 2, 'fsdp': 2, 'tensor': 2}" in out
  for what in ("params ", "optimizer state", "activations/temporaries", "FLOPs per step",
               "Memory: fits in 1.000 GiB"):
    assert what in out, (what, out)


@pytest.mark.parametrize("args, expected", [
    (["--mesh", "data=2,fsdp=2", "--devices", "8"],
     "mesh {'data': 2, 'fsdp': 2, 'tensor': 1} has 4 devices but 8 are available"),
    (["--mesh", "data=2,model=4"], "'model=4' is not AXIS=SIZE"),
    (["--mesh", "data=-1"], "has a -1 axis; give --devices N"),
    (["--mesh", "data=8", "--device-memory", "lots"], "--device-memory 'lots' is not a size"),
    (["--mesh", "data=8", "--config.train.batch_size=12"],
     "batch_size=12 is not divisible by the data-parallel size"),
    (["--mesh", "data=8", "--config.sharding.logical_axis_rules=(('heads','model'),)"],
     "maps 'heads' to mesh axis 'model', but the mesh"),
])
def test_cli_bad_input_is_one_line(args, expected, prelm_cli):
  proc = prelm_cli("plan", "--config", "bert_tiny_pydocs", *args, timeout=300)
  assert proc.returncode == 2, (proc.stdout, proc.stderr)
  lines = proc.stderr.strip().splitlines()
  assert expected in lines[-1] and lines[-1].startswith("prelm: error: "), proc.stderr
  assert "Traceback" not in proc.stderr


def test_byte_sizes_parse():
  assert plan.parse_bytes("16GiB") == 16 * 2**30
  assert plan.parse_bytes("80GB") == 80 * 10**9
  assert plan.parse_bytes("512 MiB") == 512 * 2**20
  assert plan.parse_bytes("1024") == 1024


def test_bad_mesh_and_size_specs_are_refused():
  assert plan.parse_mesh("data=2, fsdp=16,tensor=1") == dict(data=2, fsdp=16, tensor=1)
  with pytest.raises(plan.PlanError, match="'fsdp=x' is not AXIS=SIZE"):
    plan.parse_mesh("fsdp=x")
  with pytest.raises(plan.PlanError, match="write e.g. 16GiB"):
    plan.parse_bytes("16 parsecs")


def test_analytic_flops_follow_geglu_and_the_missing_sentence_head():
  from prelm_jax.tasks import pretrain  # pylint: disable=g-import-not-at-top
  def flops(**changes):
    config = registry.load("base")
    for key, value in changes.items():
      section, name = key.split(".")
      config[section][name] = value
    return pretrain.PretrainTask(config).analytic_flops(1)[1]
  m, rows = registry.load("base").model, registry.load("base").train.batch_size
  tokens = rows * registry.load("base").data.max_seq_len
  # GeGLU's gate: one more H x mlp matmul per token and layer, x2 (multiply-add) x3.
  assert flops(**{"model.mlp_activation": "geglu"}) - flops() == (
      3 * 2 * tokens * m.num_layers * m.hidden_size * m.mlp_dim)
  # No NSP head: its H x 2 matmul per example is gone.
  assert flops() - flops(**{"data.sentence_objective": "none"}) == (
      3 * 2 * rows * 2 * m.hidden_size)
