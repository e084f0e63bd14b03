"""metrics.jsonl and TensorBoard events after a resume: steps written again appear once."""
import json
import struct

from tensorboardX.proto import event_pb2

from prelm_jax import metrics


def read_events(path):
  """The Event protos of a TFRecord event file (length, crc, data, crc per record)."""
  data, events, at = path.read_bytes(), [], 0
  while at < len(data):
    (length,) = struct.unpack("<Q", data[at:at + 8])
    event = event_pb2.Event()
    event.ParseFromString(data[at + 12:at + 12 + length])
    events.append(event)
    at += 12 + length + 4
  return events


def test_resume_drops_jsonl_records_and_purges_tensorboard_past_the_restored_step(
    tmp_path):
  first = metrics.MetricsWriter(str(tmp_path), enabled=True)
  first.start_at(0)
  for step in range(1, 7):
    first.write(step, "train", {"loss": 10.0 - step})
  first.write(6, "eval", {"loss": 3.0})
  first.close()
  # Killed after step 6 with the last checkpoint at step 3: the run resumes at 3.
  second = metrics.MetricsWriter(str(tmp_path), enabled=True)
  second.start_at(3)
  second.write(4, "train", {"loss": 0.5})
  second.close()
  records = [json.loads(l) for l in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  assert [(r["step"], r["split"], r["loss"]) for r in records] == [
      (1, "train", 9.0), (2, "train", 8.0), (3, "train", 7.0), (4, "train", 0.5)]
  files = list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))
  assert len(files) == 2  # one per attempt
  (resumed,) = [f for f in files if f.name.endswith(".from3")]
  # TensorBoard hides every earlier event at step >= 4 once it reads this marker.
  starts = [e for e in read_events(resumed)
            if e.HasField("session_log") and e.session_log.status == event_pb2.SessionLog.START]
  assert [e.step for e in starts] == [4]
  scalars = [(e.step, v.tag, v.simple_value) for e in read_events(resumed)
             for v in e.summary.value]
  assert scalars == [(4, "train/loss", 0.5)]
