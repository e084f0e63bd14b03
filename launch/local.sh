#!/usr/bin/env bash
# Runs one `prelm` job as N processes on this machine that meet through jax.distributed
# on 127.0.0.1, each with K simulated CPU devices: a multi-host run in miniature.
#
#   launch/local.sh --processes 2 --devices-per-process 4 [--port 12355] [--dry-run] \
#       -- train --config bert_tiny_pydocs --workdir runs/local_2x4 [--config.a.b=v ...]
#
# Each process gets PYTHONUNBUFFERED=1, JAX_PLATFORMS=cpu,
# XLA_FLAGS=--xla_force_host_platform_device_count=K (replacing any XLA_FLAGS) and
# --coordinator_address/--num_processes/--process_id. Output lines are prefixed
# "[p<i>] ". The exit status is 0 when every process succeeds; when one fails the others
# are stopped (they would wait for it at the next collective) and its status is returned.
# --dry-run prints the commands and runs nothing, before or after `--` (prelm has no
# such flag); --help after `--` is this text, and the other options above are refused
# there. PRELM_PYTHON picks the interpreter (default: the repo's .venv, else python3);
# --port defaults to a free one.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$repo/launch/common.sh"
processes=2 devices=4 port="" dry_run=0
while (($#)); do
  case "$1" in
    --processes) processes="${2-}"; shift 2 || die "--processes needs a value" ;;
    --devices-per-process) devices="${2-}"; shift 2 || die "--devices-per-process needs a value" ;;
    --port) port="${2-}"; shift 2 || die "--port needs a value" ;;
    --dry-run) dry_run=1; shift ;;
    --) shift; break ;;
    -h|--help) print_usage; exit 0 ;;
    *) die "unknown option '$1'; usage: local.sh --processes N --devices-per-process K [--port P] [--dry-run] -- train ..." ;;
  esac
done
split_prelm_args "--processes --devices-per-process --port" "$@"
set -- ${prelm_args[@]+"${prelm_args[@]}"}
(($#)) || die "missing the prelm arguments after '--', e.g. -- train --config bert_tiny_pydocs --workdir runs/x"
for value in "$processes" "$devices" ${port:+"$port"}; do
  [[ $value =~ ^[1-9][0-9]*$ ]] || die "'$value' is not a positive integer (--processes, --devices-per-process, --port)"
done

python="${PRELM_PYTHON:-}"
if [[ -z $python ]]; then
  if [[ -x $repo/.venv/bin/python ]]; then python="$repo/.venv/bin/python"; else python=python3; fi
fi
if [[ -z $port ]]; then
  port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
fi

commands=()
for ((i = 0; i < processes; i++)); do
  # Unbuffered: lines reach the terminal (prefixed) as they are printed.
  cmd=(env PYTHONUNBUFFERED=1 JAX_PLATFORMS=cpu "XLA_FLAGS=--xla_force_host_platform_device_count=$devices"
       "$python" -m prelm_jax.main "$@" "--coordinator_address=127.0.0.1:$port"
       "--num_processes=$processes" "--process_id=$i")
  commands+=("$(shell_join "${cmd[@]}")")
done
if ((dry_run)); then
  printf '%s\n' "${commands[@]}"
  exit 0
fi

pids=()
stop_all() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; }
trap 'stop_all; exit 130' INT TERM
for ((i = 0; i < processes; i++)); do
  echo "local.sh: [p$i] ${commands[i]}" >&2
  # exec: the pid waited for and stopped is the process itself, not a wrapping subshell.
  eval "exec ${commands[i]}" > >(sed -u "s/^/[p$i] /") 2>&1 &
  pids+=("$!")
done

declare -A running  # pid -> process index, of those not yet waited for
for ((i = 0; i < processes; i++)); do running[${pids[i]}]=$i; done
status=0
while ((${#running[@]})); do
  rc=0
  wait -n -p finished "${!running[@]}" || rc=$?
  i=${running[$finished]}
  unset "running[$finished]"
  if ((rc != 0)); then
    echo "local.sh: process $i (pid $finished) exited with status $rc; stopping the others" >&2
    status=$rc
    stop_all
    break
  fi
done
wait || true  # the stopped processes and the output prefixers
exit "$status"
