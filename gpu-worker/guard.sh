#!/usr/bin/env bash
# Runs one training command for the GPU worker, which starts this script as the leader of a new
# process group. When our stdin closes, the worker holding its other end has died (even by SIGKILL,
# which it cannot intercept), so the whole group is killed: no orphan keeps training on the GPU.
# With a second argument "no-network", the command runs in a network namespace of its own (only a
# loopback interface): proposed code cannot reach the network.
exec 3<&0 # background jobs get /dev/null as stdin; keep the worker's pipe on fd 3 for the watcher
isolate=()
if [[ "$2" == no-network ]]; then
  isolate=(unshare --net)
  [[ $EUID -eq 0 ]] || isolate+=(--map-root-user)
fi
"${isolate[@]}" bash -c '[[ -n "$2" ]] && ip link set lo up 2>/dev/null; exec bash -c "$1"' _ "$1" "${isolate[*]}" </dev/null 3<&- &
command_pid=$!
( cat <&3 >/dev/null; kill -KILL 0 ) >/dev/null 2>&1 &
exec 3<&-
wait "$command_pid"
