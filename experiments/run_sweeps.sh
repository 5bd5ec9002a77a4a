#!/usr/bin/env bash
# Run every experiment's CPU budget in ONE background process (nohup), resuming from the
# results files in experiments/results/cpu/, in the order of experiments/catalog.py (cheap,
# informative experiments first), and rewrite REPRODUCTION.md after each experiment.
#
#   bash experiments/run_sweeps.sh                 # start (or resume) the sweep
#   tail -f experiments/logs/sweep.log             # follow it
#   kill -- -$(cat experiments/logs/sweep.pid)     # pause: stops the whole process group
#   bash experiments/run_sweeps.sh                 # resume: finished runs are skipped
#
# Extra arguments go to `reproduce.py run --all` (e.g. --paper on a GPU machine).
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p experiments/logs
PIDFILE=experiments/logs/sweep.pid
LOG=experiments/logs/sweep.log
if [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
    echo "A sweep is already running (process group $(cat "$PIDFILE")); one at a time." >&2
    exit 1
fi
PYTHON=${PYTHON:-.venv/bin/python}
echo "##### $(date '+%Y-%m-%d %H:%M:%S') start: KERAS_BACKEND=jax $PYTHON experiments/reproduce.py run --all $*" >> "$LOG"
# setsid: the sweep and the experiment it is running form one process group, so one
# `kill -- -PGID` pauses both.
KERAS_BACKEND=jax nohup setsid "$PYTHON" experiments/reproduce.py run --all "$@" >> "$LOG" 2>&1 &
echo $! > "$PIDFILE"
echo "sweep started: PID (and process group) $(cat "$PIDFILE"), log $LOG"
echo "pause: kill -- -$(cat "$PIDFILE")    resume: bash experiments/run_sweeps.sh"
