#!/bin/sh
# A rank that fails must end the whole job: non-zero exit, within the time limit (exit 124 from timeout
# means the job hung), and for a thrown error, its message on stderr.
# usage: abort_test.sh throw|kill NP PROBE MPIEXEC [MPIEXEC ARGS...]
mode=$1; np=$2; probe=$3; shift 3
out=$(timeout 60 "$@" -np "$np" "$probe" "$mode" 2>&1)
rc=$?
echo "$out"
echo "exit code: $rc"
if [ "$rc" -eq 124 ]; then echo "FAIL: the job hung"; exit 1; fi
if [ "$rc" -eq 0 ]; then echo "FAIL: the job exited 0"; exit 1; fi
if echo "$out" | grep -q "not aborted"; then echo "FAIL: a rank continued"; exit 1; fi
last=$((np - 1))
if [ "$mode" = throw ] && ! echo "$out" | grep -q "rank $last: injected failure"; then
  echo "FAIL: the error message is missing"; exit 1
fi
echo "PASS"
