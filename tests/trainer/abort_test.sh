#!/bin/sh
# A rank that throws must end the whole job: non-zero exit, its message on stderr, and within the time
# limit (exit 124 from timeout means the job hung).
# usage: abort_test.sh NP PROBE MPIEXEC [MPIEXEC ARGS...]
np=$1; probe=$2; shift 2
out=$(timeout 60 "$@" -np "$np" "$probe" 2>&1)
rc=$?
echo "$out"
echo "exit code: $rc"
if [ "$rc" -eq 124 ]; then echo "FAIL: the job hung"; exit 1; fi
if [ "$rc" -eq 0 ]; then echo "FAIL: the job exited 0"; exit 1; fi
if echo "$out" | grep -q "not aborted"; then echo "FAIL: a rank continued"; exit 1; fi
last=$((np - 1))
if ! echo "$out" | grep -q "rank $last: injected failure"; then echo "FAIL: the error message is missing"; exit 1; fi
echo "PASS"
