#!/usr/bin/env bash
# Cloud TPU VM pod slices with gcloud: create, copy+install the code, run `prelm train`
# on every worker at once, delete. --num-slices N > 1 uses a queued resource of N slices
# (multi-slice: the TPU runtime joins them; jax reads the slices from the VM metadata).
#
#   launch/tpu/tpu.sh create --name my-pod --zone us-central2-b --accelerator-type v4-32 \
#       --version tpu-ubuntu2204-base
#   launch/tpu/tpu.sh setup  --name my-pod --zone us-central2-b
#   launch/tpu/tpu.sh run    --name my-pod --zone us-central2-b -- train \
#       --config bert_tiny_pydocs --workdir /mnt/shared/runs/tiny --config.train.batch_size=512
#   launch/tpu/tpu.sh delete --name my-pod --zone us-central2-b
#
# Options: --project P, --num-slices N (default 1), --python (default python3.11: the
# package needs Python >= 3.11; setup installs it with apt if the image lacks it),
# --dry-run (print the commands, run nothing). `run` adds --distributed=on: every worker
# calls jax.distributed.initialize(), which finds its peers in the TPU metadata. The
# workdir must be a filesystem all workers share (e.g. an NFS or Filestore mount).
#
# --dry-run also counts first (tpu.sh --dry-run run ...) or after `--` (prelm has no
# such flag); --help after `--` is this text; the other options are refused there.
# Without --dry-run, gcloud (the Google Cloud SDK) must be on PATH.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
source "$repo/launch/common.sh"

dry_run=0
# `tpu.sh --dry-run run ...` reads naturally too.
if [[ ${1-} == --dry-run ]]; then dry_run=1; shift; fi
command="${1-}"
case "$command" in
  create|setup|run|delete) shift ;;
  -h|--help) print_usage; exit 0 ;;
  *) die "first argument must be create, setup, run or delete (got '${command}')" ;;
esac
name="" zone="" project="" accelerator="" version="" slices=1 python=python3.11
while (($#)); do
  case "$1" in
    --name) name="${2-}"; shift 2 || die "--name needs a value" ;;
    --zone) zone="${2-}"; shift 2 || die "--zone needs a value" ;;
    --project) project="${2-}"; shift 2 || die "--project needs a value" ;;
    --accelerator-type) accelerator="${2-}"; shift 2 || die "--accelerator-type needs a value" ;;
    --version) version="${2-}"; shift 2 || die "--version needs a value" ;;
    --num-slices) slices="${2-}"; shift 2 || die "--num-slices needs a value" ;;
    --python) python="${2-}"; shift 2 || die "--python needs a value" ;;
    --dry-run) dry_run=1; shift ;;
    --) shift; break ;;
    *) die "unknown option '$1' (see launch/tpu/tpu.sh --help)" ;;
  esac
done
split_prelm_args "--name --zone --project --accelerator-type --version --num-slices --python" "$@"
set -- ${prelm_args[@]+"${prelm_args[@]}"}
[[ -n $name && -n $zone ]] || die "--name and --zone are required"
[[ $slices =~ ^[1-9][0-9]*$ ]] || die "--num-slices '$slices' is not a positive integer"
if [[ $command == create ]]; then
  [[ -n $accelerator && -n $version ]] || \
    die "create needs --accelerator-type (e.g. v5litepod-16, v4-32) and --version (the TPU runtime, e.g. v2-alpha-tpuv5-lite, tpu-ubuntu2204-base)"
fi
if [[ $command == run ]]; then
  (($#)) || die "run needs the prelm arguments after '--', e.g. -- train --config bert_tiny_pydocs --workdir /mnt/shared/runs/x"
else
  (($# == 0)) || die "only run takes arguments after '--'"
fi

common=(--zone="$zone" ${project:+--project="$project"})
if ((slices > 1)); then
  group=(gcloud compute tpus queued-resources) all=(--node=all --worker=all)
else
  group=(gcloud compute tpus tpu-vm) all=(--worker=all)
fi
tarball="/tmp/prelm_jax-$name.tar.gz"
commands=()
add() { commands+=("$(shell_join "$@")"); }
case "$command" in
  create)
    if ((slices > 1)); then
      add "${group[@]}" create "$name" "${common[@]}" --accelerator-type="$accelerator" \
          --runtime-version="$version" --node-count="$slices" --node-prefix="$name"
    else
      add "${group[@]}" create "$name" "${common[@]}" --accelerator-type="$accelerator" \
          --version="$version"
    fi ;;
  setup)
    # The working tree without the local venv, git data or runs; installed pinned.
    add tar -czf "$tarball" --exclude=./.venv --exclude=./.git --exclude=./runs -C "$repo" .
    add "${group[@]}" scp "$tarball" "$name:" "${common[@]}" "${all[@]}"
    install="(command -v $python || (sudo apt-get update -qq && sudo apt-get install -y -qq $python $python-venv))"
    install+=" && rm -rf prelm_jax && mkdir prelm_jax && tar -xzf $(basename "$tarball") -C prelm_jax"
    install+=" && cd prelm_jax && $python -m venv .venv"
    install+=" && .venv/bin/pip install -q -e . 'jax[tpu]' -c constraints.txt"
    add "${group[@]}" ssh "$name" "${common[@]}" "${all[@]}" --command="$install" ;;
  run)
    add "${group[@]}" ssh "$name" "${common[@]}" "${all[@]}" \
        --command="cd prelm_jax && $(shell_join .venv/bin/python -m prelm_jax.main "$@" --distributed=on)" ;;
  delete)
    if ((slices > 1)); then
      add "${group[@]}" delete "$name" "${common[@]}" --force --quiet
    else
      add "${group[@]}" delete "$name" "${common[@]}" --quiet
    fi ;;
esac

if ((!dry_run)) && ! command -v gcloud >/dev/null; then
  die "gcloud not found: install the Google Cloud SDK (https://cloud.google.com/sdk/docs/install) and run gcloud auth login, or add --dry-run to see the commands"
fi
for cmd in "${commands[@]}"; do
  if ((dry_run)); then
    echo "$cmd"
  else
    echo "tpu.sh: $cmd" >&2
    eval "$cmd"
  fi
done
