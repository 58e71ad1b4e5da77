# Shared by the command-line tests (tests/*/*_test.sh), sourced without arguments as their first line:
#   . "$(dirname "${BASH_SOURCE[0]}")/../tools/check_lib.sh"
# It reads the test's own arguments, RGEMMA SOURCE_DIR [MPIEXEC [MPIEXEC_FLAGS...]] (how tests/*/CMakeLists.txt
# registers them), and sets:
#   rgemma  the binary, an absolute path     src  the source tree, absolute     mpi  the launcher, an array
#           (empty when the build has no MPI)
#   tmp     a fresh work folder, removed on exit unless RG_KEEP_TMP is set
# and owns the checks' bookkeeping: fails counts failures; fail / ok print one line each; check and check_re
# run a command and judge its exit code and output; finish ends the test (exit 1 when anything failed).
# Fixture words: words_into draws words from the test's `words` array in the test's own shell. Never read
# $RANDOM inside $(...): bash >= 5.1 reseeds RANDOM in every subshell, so such a fixture changes from run
# to run whatever the test seeded (a CI run once failed from it).
set -u
[ $# -ge 2 ] || { echo "usage: $0 RGEMMA SOURCE_DIR [MPIEXEC [MPIEXEC_FLAGS...]]" >&2; exit 2; }
rgemma=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
src=$(cd "$2" && pwd)
mpi=("${@:3}")
tmp=$(mktemp -d)
if [ -n "${RG_KEEP_TMP:-}" ]; then echo "work dir $tmp (kept: RG_KEEP_TMP is set)"; else trap 'rm -rf "$tmp"' EXIT; fi

fails=0
fail() { echo "FAIL $*"; fails=$((fails+1)); }
ok() { echo "ok   $*"; }
# finish WHAT: the last line of a test; exit 1 when any check failed.
finish() {
  if [ "$fails" = 0 ]; then echo "all $1 checks passed"; else echo "$fails $1 check(s) failed"; exit 1; fi
}
# stop_if_failed WHY: ends the test now when a step the later checks depend on failed (fixtures, runs).
stop_if_failed() { [ "$fails" = 0 ] || { echo "$1; stopping"; exit 1; }; }

# check NAME EXPECTED_CODE TEXT -- command...: the command exits EXPECTED_CODE and its output (stdout and
# stderr) contains the fixed string TEXT; check_re the same with an extended regex.
_check() {  # _check GREP_FLAG NAME EXPECTED_CODE PATTERN -- command...
  local flag=$1 name=$2 want=$3 pattern=$4; shift 5
  local out code
  out=$("$@" 2>&1); code=$?
  if [ "$code" != "$want" ]; then fail "$name: exit $code, expected $want"; echo "$out"; return; fi
  if ! grep -q"$flag" -- "$pattern" <<<"$out"; then fail "$name: output lacks '$pattern'"; echo "$out"; return; fi
  ok "$name"
}
check() { _check F "$@"; }
check_re() { _check E "$@"; }

# ranks_run NAME NP ARGS...: `rgemma ARGS... --train.out=NAME` at NP ranks (NP 1: one process, no launcher),
# output in NAME.log; a non-zero exit is a failure, shown with the log's last lines.
ranks_run() {
  local name=$1 np=$2; shift 2
  if [ "$np" = 1 ]; then "$rgemma" "$@" --train.out="$name" > "$name.log" 2>&1
  else "${mpi[@]}" -np "$np" "$rgemma" "$@" --train.out="$name" > "$name.log" 2>&1; fi
  local code=$?
  [ $code = 0 ] || { fail "$name: exit $code"; tail -5 "$name.log"; }
}

# words_into VAR N [END]: N words drawn from the array `words` (space separated, END appended) into VAR,
# without a subshell, so RANDOM stays on the sequence the test seeded.
words_into() {
  local -n _wi_into=$1; local _wi_k
  _wi_into=""
  for ((_wi_k = 0; _wi_k < $2; _wi_k++)); do _wi_into+="${words[RANDOM % ${#words[@]}]} "; done
  _wi_into="${_wi_into% }${3:-}"
}
# line N: prints N words and a full stop (a corpus line).
line() { local _l; words_into _l "$1" .; echo "$_l"; }
