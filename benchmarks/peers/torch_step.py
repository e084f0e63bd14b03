"""Peer: PyTorch `BertForPreTraining` (transformers) with torch.optim.AdamW, MLM + NSP.

Run by benchmarks/train_step.py in its own interpreter (protocol: common.py):
  python benchmarks/peers/torch_step.py '{"hidden_size": 512, ...}'
dtype bfloat16 runs forward and loss under torch.autocast (params stay f32, as prelm's).
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # pylint: disable=g-import-not-at-top,wrong-import-position


def main():
  start = time.perf_counter()
  spec = common.spec_from_argv()
  import torch  # pylint: disable=g-import-not-at-top
  import transformers  # pylint: disable=g-import-not-at-top
  torch.manual_seed(spec["seed"])
  if spec.get("torch_threads"):
    # On a loaded machine torch's intra-op threads can wait on each other (a 2-thread
    # tiny step went from 0.06 s to 1.5 s); an idle machine wants the default.
    torch.set_num_threads(spec["torch_threads"])
  config = transformers.BertConfig(**common.bert_config(spec))
  device = "cuda" if spec.get("device") == "cuda" else "cpu"
  model = transformers.BertForPreTraining(config).to(device).train()
  opt = torch.optim.AdamW(model.parameters(), lr=spec["learning_rate"], weight_decay=0.01)
  batch = {k: torch.from_numpy(v).to(device) for k, v in common.random_batch(spec).items()}
  bf16 = spec["dtype"] == "bfloat16"

  def step():
    with torch.autocast(device, dtype=torch.bfloat16, enabled=bf16):
      loss = model(**batch).loss
    loss.backward()
    opt.step()
    opt.zero_grad(set_to_none=True)
    return float(loss.detach())  # waits for the step

  peak = torch.cuda.max_memory_allocated if device == "cuda" else None
  common.serve(step, time.perf_counter() - start, device_peak=peak, torch=torch.__version__,
               transformers=transformers.__version__, threads=torch.get_num_threads())


if __name__ == "__main__":
  main()
