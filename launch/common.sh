# Shared by the launchers (sourced, not run).

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
