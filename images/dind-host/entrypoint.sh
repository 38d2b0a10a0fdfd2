#!/bin/sh
# Prepare an unprivileged container (all capabilities but SYS_RESOURCE, seccomp and AppArmor
# unconfined) to run dockerd, then run it. Docker mounts /sys and the cgroups read-only and
# masks parts of /proc for such containers; the inner dockerd must write to all of them.
set -eu

mount -o remount,rw /sys
# The cgroup hierarchies are read-only bind mounts: change the mount's flag, not the
# (shared, busy) cgroup filesystem under it.
awk '$2 ~ "^/sys/fs/cgroup" {print $2}' /proc/mounts | while read -r mnt; do
    mount -o remount,bind,rw "$mnt"
done
# Deepest first, so that nested masks come off before their parents.
awk '$2 ~ "^/proc/" {print $2}' /proc/mounts | sort -r | while read -r mnt; do
    umount "$mnt"
done

# A restarted host keeps its writable layer: pid files of the previous dockerd would stop
# the new one from starting.
rm -f /var/run/docker.pid /var/run/docker/containerd/containerd.pid

exec dockerd --host=unix:///var/run/docker.sock "$@"
