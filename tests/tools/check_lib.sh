# Shared by the command-line tests: run a command, check its exit code and that its output contains a
# fixed string (check) or matches an extended regex (check_re). Failures are counted in $fails.
fails=0
_check() {  # _check GREP_FLAG NAME EXPECTED_CODE PATTERN -- command...
  local flag=$1 name=$2 want=$3 pattern=$4; shift 5
  local out code
  out=$("$@" 2>&1); code=$?
  if [ "$code" != "$want" ]; then echo "FAIL $name: exit $code, expected $want"; echo "$out"; fails=$((fails+1)); return; fi
  if ! grep -q"$flag" -- "$pattern" <<<"$out"; then echo "FAIL $name: output lacks '$pattern'"; echo "$out"; fails=$((fails+1)); return; fi
  echo "ok   $name"
}
check() { _check F "$@"; }
check_re() { _check E "$@"; }
