# Shell functions the benchmark scripts share (sourced, not run).

cpu_ticks() { # utime+stime of PID in clock ticks (/proc/PID/stat)
  local s
  s="$(cat "/proc/$1/stat")"
  s="${s##*) }"
  # shellcheck disable=SC2086
  set -- $s
  echo $(( ${12} + ${13} ))
}
