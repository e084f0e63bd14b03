# Shared by the launchers (sourced, not run).

# One-line error naming the launcher, exit 2.
die() { echo "$(basename "$0"): $*" >&2; exit 2; }

# --help: the comment block at the top of the launcher.
print_usage() { awk 'NR > 1 && /^#/ {print substr($0, 3); next} NR > 1 {exit}' "$0"; }

# Prints its arguments as one shell command line, quoting like Python's shlex.join:
# what --dry-run shows can be pasted back into a shell and means the same argv.
shell_join() {
  local out=() arg
  for arg in "$@"; do
    if [[ -n $arg && $arg =~ ^[A-Za-z0-9_@%+=:,./-]+$ ]]; then
      out+=("$arg")
    else
      out+=("'${arg//\'/\'\"\'\"\'}'")
    fi
  done
  echo "${out[*]}"
}

# The arguments after `--` are prelm's, but a user may put a launcher flag there too.
# prelm has no --dry-run, so one anywhere means "run nothing": it sets dry_run=1 and is
# taken out. --help shows the launcher's usage. One of the launcher's other options
# (named in $1, space-separated) is refused: prelm would only reject it later, on every
# process or cluster node. Sets prelm_args to the rest, in order.
#   split_prelm_args "--name --zone" "$@"; set -- ${prelm_args[@]+"${prelm_args[@]}"}
split_prelm_args() {
  local own=$1 arg opt
  shift
  prelm_args=()
  for arg in "$@"; do
    case "$arg" in
      --dry-run) dry_run=1; continue ;;
      -h|--help) print_usage; exit 0 ;;
    esac
    for opt in $own; do
      if [[ ${arg%%=*} == "$opt" ]]; then
        die "$opt goes before '--': what follows '--' is passed to prelm"
      fi
    done
    prelm_args+=("$arg")
  done
}
