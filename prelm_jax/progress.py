"""Progress of the train loop: a tqdm bar at a terminal, plain lines in a log file.

In a batch job's log (no terminal) a bar would fill the file with carriage returns and
cursor moves; there a line is printed after the first step (so the log shows the run
is training within seconds of the compile) and then at most every 30 s.
"""
import sys
import time

from tqdm import tqdm

LOG_FILE_INTERVAL_S = 30.0


def say(message, *, enabled=True):
  """A line for the person at the console, without breaking a progress bar."""
  if enabled:
    tqdm.write(message, file=sys.stdout)


class Progress:
  """Counts steps from `initial` to `total`; `update(n, **postfix)` after each step."""

  def __init__(self, total, initial, *, enabled, desc="train", stream=None):
    self._stream = stream or sys.stderr
    self._enabled = enabled
    self._bar = None
    self._total, self._step = total, initial
    self._start = self._last_line = time.monotonic()
    self._start_step = initial
    self._postfix = {}
    self._desc = desc
    if enabled and self._stream.isatty():
      self._bar = tqdm(total=total, initial=initial, desc=desc, unit="step",
                       dynamic_ncols=True, file=self._stream)

  def set_postfix(self, **values):
    self._postfix = values
    if self._bar is not None:
      self._bar.set_postfix(**values)

  def update(self, n=1):
    self._step += n
    if self._bar is not None:
      self._bar.update(n)
      return
    now = time.monotonic()
    first = self._step - n == self._start_step
    if self._enabled and (first or now - self._last_line >= LOG_FILE_INTERVAL_S
                          or self._step == self._total):
      self._line(now)

  def _line(self, now):
    elapsed = now - self._start
    done = self._step - self._start_step
    rate = done / elapsed if elapsed > 0 else 0.0
    eta = (self._total - self._step) / rate if rate > 0 else float("nan")
    parts = [f"{self._desc}: step {self._step}/{self._total}",
             f"{100 * self._step / self._total:.0f}%", f"{rate:.2f} steps/s"]
    if eta == eta:  # not nan
      parts.append(f"eta {int(eta) // 60}m{int(eta) % 60:02d}s")
    parts += [f"{k}={v}" for k, v in self._postfix.items()]
    print(" | ".join(parts), file=self._stream, flush=True)
    self._last_line = now

  def close(self):
    if self._bar is not None:
      self._bar.close()
