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
