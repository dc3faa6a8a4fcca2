#!/usr/bin/env bash
# `make pytest`: the test suite on each ground chosen by GROUND (sandbox, real or both).
#
# With both, the two grounds run as two pytest sessions at once: the real ground spends most of
# its time waiting on kube-controller-manager (its Job controller batches Pod updates for a
# second before a Job completes), the sandbox spends CPU, so together they take about as long as
# the longer one. The real ground's session writes to a log, printed when both have ended; a
# ground that cannot run (no Go, so no binaries) is said in that session's header and summary.
#
# Usage: tools/pytest-grounds.sh PYTEST GROUND [pytest args...]
set -uo pipefail

PYTEST="$1"
GROUND="$2"
shift 2

if [[ "$GROUND" != "both" ]]; then
    KOOS_GROUND="$GROUND" exec "$PYTEST" "$@"
fi

log="$(mktemp "${TMPDIR:-/tmp}/koos-real-ground.XXXXXX")"
trap 'rm -f "$log"' EXIT
echo "pytest: the sandbox ground here, the real ground at the same time (its report follows)"
KOOS_GROUND=real "$PYTEST" "$@" >"$log" 2>&1 &
real=$!
trap 'kill "$real" 2>/dev/null; rm -f "$log"' EXIT INT TERM
# KOOS_REQUIRE_REAL_GROUND is for the real ground's session alone.
env -u KOOS_REQUIRE_REAL_GROUND KOOS_GROUND=sandbox "$PYTEST" "$@"
sandbox_rc=$?
wait "$real"
real_rc=$?
echo
echo "==================== the real ground (KOOS_GROUND=real) ===================="
cat "$log"
echo "pytest: sandbox ground exit $sandbox_rc, real ground exit $real_rc"
# 5 is "no tests collected" (a -k or path that selects none on one ground): not a failure.
for rc in "$sandbox_rc" "$real_rc"; do
    if [[ "$rc" -ne 0 && "$rc" -ne 5 ]]; then
        exit "$rc"
    fi
done
