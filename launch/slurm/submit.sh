#!/usr/bin/env bash
# Submits launch/slurm/train.sbatch: sbatch options first, then `--`, then the prelm
# arguments (experiment and overrides), which every task receives unchanged.
#
#   launch/slurm/submit.sh [--dry-run] [sbatch options ...] -- train --config bert_tiny_pydocs \
#       --workdir /shared/runs/tiny [--config.a.b=v ...]
#
# e.g. sbatch options for 4 GPU hosts: --nodes=4 --gpus-per-node=8 --time=12:00:00
# (keep one task per node; add --wait to block until the job ends and return its status).
# --dry-run prints the sbatch command and submits nothing, before or after `--` (prelm
# has no such flag); --help after `--` is this text. Common sbatch options after `--`
# (--nodes, --time, ...) are refused: prelm would reject them only once the job starts.
# Without sbatch on PATH (no SLURM client here) it says so and exits 2.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/../common.sh"
dry_run=0 sbatch_args=()
while (($#)); do
  case "$1" in
    --dry-run) dry_run=1; shift ;;
    --) shift; break ;;
    -h|--help) print_usage; exit 0 ;;
    *) sbatch_args+=("$1"); shift ;;
  esac
done
# Long sbatch options a user may misplace; prelm has none of these names.
sbatch_options="--nodes --ntasks --ntasks-per-node --gpus --gpus-per-node --gres --cpus-per-task
  --mem --time --partition --account --qos --job-name --output --error --wait --parsable"
split_prelm_args "$sbatch_options" "$@"
set -- ${prelm_args[@]+"${prelm_args[@]}"}
(($#)) || die "missing the prelm arguments after '--', e.g. -- train --config bert_tiny_pydocs --workdir /shared/runs/x"

script="$here/train.sbatch"
cmd=(sbatch ${sbatch_args[@]+"${sbatch_args[@]}"} "$script" "$@")
if ((dry_run)); then
  shell_join "${cmd[@]}"
  exit 0
fi
command -v sbatch >/dev/null || \
  die "sbatch not found: this machine has no SLURM client; submit from a SLURM login node, or add --dry-run to see the command"
exec "${cmd[@]}"
