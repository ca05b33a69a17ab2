#!/usr/bin/env bash
# Run an image the way `docker run --rm [-v HOST:CTR]... IMAGE ARGS...` would, without a
# container runtime: for sandboxes (like this project's CI) where `podman run` is refused
# but `podman mount` works. The image's ENTRYPOINT, CMD, ENV, USER and WORKDIR are read
# from its configuration; the command runs in a private mount namespace (so every mount
# it makes disappears with it), chrooted into a throw-away container's root file system,
# as the image's user. The container is unmounted and removed on exit, whatever happens.
#
#   containers/run-in-image.sh [-v HOST_DIR:CONTAINER_DIR[:ro]]... [-u UID[:GID]]
#       [-e NAME=VALUE]... [--entrypoint PROG] [--read-only] IMAGE [ARG...]
#
# --read-only runs it the way Apptainer runs a SIF: the image's root file system read-only
# and a fresh tmpfs on /tmp (combine with -u for an arbitrary uid and -e HOME=...).
#
# Exit status: the command's. Needs root, podman, unshare and chroot (util-linux, coreutils).
set -euo pipefail

volumes=()
user=""
entrypoint_override=""
extra_env=()
read_only=0
while [ $# -gt 0 ]; do
  case "$1" in
    -v) volumes+=("$2"); shift 2 ;;
    -u) user="$2"; shift 2 ;;
    --entrypoint) entrypoint_override="$2"; shift 2 ;;
    -e) extra_env+=("$2"); shift 2 ;;
    --read-only) read_only=1; shift ;;
    --) shift; break ;;
    -*) echo "run-in-image: unknown option $1" >&2; exit 2 ;;
    *) break ;;
  esac
done
[ $# -ge 1 ] || { sed -n '2,17p' "$0" >&2; exit 2; }
image="$1"; shift

cid=""
# shellcheck disable=SC2329  # invoked by the trap below
cleanup() {
  if [ -n "$cid" ]; then
    podman umount "$cid" >/dev/null 2>&1 || true
    podman rm --force "$cid" >/dev/null 2>&1 || true
  fi
}
trap cleanup EXIT INT TERM

cid=$(podman create "$image")
mnt=$(podman mount "$cid")

# The image configuration: one NUL-separated record per item.
config=$(podman image inspect --format '{{json .Config}}' "$image")
read_config() {  # $1: Env | Entrypoint | Cmd | User | WorkingDir
  CONFIG="$config" python3 -c '
import json, os, sys
value = json.loads(os.environ["CONFIG"]).get(sys.argv[1]) or []
if isinstance(value, str):
    value = [value] if value else []
sys.stdout.write("".join(v + "\0" for v in value))' "$1"
}
mapfile -d '' env_vars < <(read_config Env)
mapfile -d '' entrypoint < <(read_config Entrypoint)
mapfile -d '' default_cmd < <(read_config Cmd)
mapfile -d '' workdir < <(read_config WorkingDir)
mapfile -d '' image_user < <(read_config User)
if [ -n "$entrypoint_override" ]; then
  entrypoint=("$entrypoint_override")
else
  [ $# -gt 0 ] || set -- "${default_cmd[@]}"
fi
wd="${workdir[0]:-/}"
user="${user:-${image_user[0]:-0}}"

# Resolve a user name through the image's own /etc/passwd.
uid="${user%%:*}"; gid=""
[ "$user" != "$uid" ] && gid="${user#*:}"
if ! [[ "$uid" =~ ^[0-9]+$ ]]; then
  entry=$(grep -E "^${uid}:" "$mnt/etc/passwd") || { echo "run-in-image: no user $uid in $image" >&2; exit 2; }
  uid=$(cut -d: -f3 <<<"$entry"); gid="${gid:-$(cut -d: -f4 <<<"$entry")}"
fi
gid="${gid:-$uid}"

mounts=()
for v in "${volumes[@]}"; do
  host="${v%%:*}"; rest="${v#*:}"; ctr="${rest%%:*}"; mode="rw"
  [ "$rest" != "$ctr" ] && mode="${rest#*:}"
  [ -d "$host" ] || { echo "run-in-image: $host is not a directory" >&2; exit 2; }
  mkdir -p "$mnt$ctr"   # in the container's writable layer, before any read-only remount
  mounts+=("$(realpath "$host")" "$mnt$ctr" "$mode")
done

set +e
# shellcheck disable=SC2016  # the inner script expands its own arguments
unshare --mount --propagation private /bin/bash -euc '
  mnt="$1"; uid="$2"; gid="$3"; wd="$4"; read_only="$5"; nmounts="$6"; shift 6
  if [ "$read_only" = 1 ]; then
    mount --bind "$mnt" "$mnt"
    mount -o remount,bind,ro "$mnt"
    mount -t tmpfs -o mode=1777 tmp "$mnt/tmp"
  fi
  mount -t proc proc "$mnt/proc"
  mount --bind /dev "$mnt/dev"
  mount -t tmpfs -o mode=1777 shm "$mnt/dev/shm"
  mount --bind -o ro /sys "$mnt/sys" 2>/dev/null || mount --bind /sys "$mnt/sys"
  for ((i = 0; i < nmounts; i++)); do
    mount --bind "$1" "$2"
    [ "$3" = ro ] && mount -o remount,bind,ro "$2"
    shift 3
  done
  exec chroot --userspec="$uid:$gid" "$mnt" /usr/bin/env -i -C "$wd" "$@"
' run-in-image "$mnt" "$uid" "$gid" "$wd" "$read_only" "$(( ${#mounts[@]} / 3 ))" "${mounts[@]}" \
  "${env_vars[@]}" "${extra_env[@]}" "${entrypoint[@]}" "$@"
rc=$?
set -e
exit $rc
