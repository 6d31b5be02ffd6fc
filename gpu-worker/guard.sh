#!/usr/bin/env bash
# Runs one training command for the GPU worker, which starts this script as the leader of a new
# process group. When our stdin closes, the worker holding its other end has died (even by SIGKILL,
# which it cannot intercept), so the whole group is killed: no orphan keeps training on the GPU.
# Usage: guard.sh COMMAND [BOX...]: the command runs as `BOX... bash -c COMMAND` (BOX: bwrap and its
# arguments, whose own --die-with-parent takes the box down when we are killed).
exec 3<&0 # background jobs get /dev/null as stdin; keep the worker's pipe on fd 3 for the watcher
"${@:2}" bash -c "$1" </dev/null 3<&- &
command_pid=$!
( cat <&3 >/dev/null; kill -KILL 0 ) >/dev/null 2>&1 &
exec 3<&-
wait "$command_pid"
