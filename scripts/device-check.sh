#!/usr/bin/env bash
# The one command the GPU device runs (the device tool: command "bash scripts/device-check.sh",
# carry [".device", ".gl"], timeout_s 540). Unpacks the bundle scripts/device-pack.sh built into
# /tmp (needs only tar + xz, or python3's lzma/tarfile where xz is missing), puts the carried node
# on PATH, brings the Vulkan/EGL loaders where a GPU driver is and the image lacks them, runs
# dist/bench/device-check.js under a 7-minute deadline and writes its JSON to
# $OUT/device-check.json and stdout (and the log to $OUT/device-check.log).
# Extra arguments go to the check (e.g. --seconds 1).
set -uo pipefail
started=$(date +%s)
deadline_s=${CW_DEVICE_DEADLINE_S:-420}
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bundle=${CW_DEVICE_BUNDLE:-$repo/.device}
dest=${CW_DEVICE_DIR:-/tmp/cw-device}
out=${OUT:-$dest/out}
say() { printf 'device-check.sh: %s\n' "$*" >&2; }
fail() {
  say "ERROR: $*"
  mkdir -p "$out"
  printf '{"device_check": {"error": %s}}\n' "$(printf '%s' "$*" | sed 's/\\/\\\\/g; s/"/\\"/g; s/.*/"&"/')" | tee "$out/device-check.json"
  exit 1
}
have_xz() { [ -z "${CW_DEVICE_NO_XZ:-}" ] && command -v xz >/dev/null 2>&1; }

[ -f "$bundle/app.tar.xz" ] || fail "no bundle at $bundle: run bash scripts/device-pack.sh here first, and carry .device"
mkdir -p "$out" "$dest/bin" "$dest/app" || fail "cannot create $dest or $out"

# --- unpack ------------------------------------------------------------------------------------
if command -v sha256sum >/dev/null 2>&1; then
  (cd "$bundle" && sha256sum -c --quiet SHA256SUMS) || fail "the bundle in $bundle does not match its SHA256SUMS: pack and carry it again"
fi
unxz_to() { # archive, destination file
  if have_xz; then xz -dc "$1" >"$2"; else python3 -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"))' "$1" "$2"; fi
}
untar() { # archive.tar.xz, destination folder
  if have_xz; then tar -xJf "$1" -C "$2"; else python3 -c 'import sys, tarfile; tarfile.open(sys.argv[1], "r:xz").extractall(sys.argv[2], **({"filter": "tar"} if hasattr(tarfile, "tar_filter") else {}))' "$1" "$2"; fi
}
unxz_to "$bundle/node.xz" "$dest/bin/node" && chmod +x "$dest/bin/node" || fail "cannot unpack node"
untar "$bundle/native.tar.xz" "$dest/app" || fail "cannot unpack native.tar.xz"
untar "$bundle/app.tar.xz" "$dest/app" || fail "cannot unpack app.tar.xz"
export PATH="$dest/bin:$PATH"
say "unpacked in $(($(date +%s) - started)) s; node $(node -v 2>&1)"

# --- GPU drivers: Vulkan loader and ICD (what Dawn opens) --------------------------------------
if command -v nvidia-smi >/dev/null 2>&1; then
  if ! ldconfig -p 2>/dev/null | grep -q 'libvulkan\.so\.1 '; then
    if ls "$repo"/.gl/*.deb >/dev/null 2>&1; then
      say "no libvulkan.so.1: unpacking the carried loaders from .gl/"
      for f in "$repo"/.gl/*.deb; do dpkg -x "$f" /; done
      ldconfig
    else
      say "no libvulkan.so.1 and no .gl carried: WebGPU will report absent (carry .gl, which scripts/device-pack.sh fetches)"
    fi
  fi
  nv=/usr/local/nvidia
  if [ -z "${VK_DRIVER_FILES:-}${VK_ICD_FILENAMES:-}" ] && ! ls /etc/vulkan/icd.d/*.json /usr/share/vulkan/icd.d/*.json >/dev/null 2>&1 &&
    [ -f "$nv/share/vulkan/icd.d/nvidia_icd.json" ]; then
    export VK_DRIVER_FILES=$nv/share/vulkan/icd.d/nvidia_icd.json
    export __EGL_VENDOR_LIBRARY_FILENAMES=$nv/share/glvnd/egl_vendor.d/10_nvidia.json
    say "VK_DRIVER_FILES=$VK_DRIVER_FILES"
  fi
  [ -d "$nv/lib64" ] && export LD_LIBRARY_PATH="$nv/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi

# --- the check ---------------------------------------------------------------------------------
export UV_THREADPOOL_SIZE=${UV_THREADPOOL_SIZE:-$(nproc)}
left=$((deadline_s - ($(date +%s) - started)))
[ "$left" -gt 60 ] || fail "only $left s of the ${deadline_s} s deadline left after unpacking"
json="$out/device-check.json"
rm -f "$json"
cd "$dest/app" || fail "cannot enter $dest/app"
# The check keeps its own budget 20 s inside the deadline; timeout is the last resort.
timeout -k 5 "$left" node dist/bench/device-check.js --images device-images --out "$json" --budget-s $((left - 20)) "$@" \
  >"$dest/stdout.json" 2> >(tee "$out/device-check.log" >&2)
rc=$?
if [ "$rc" = 0 ]; then
  cat "$dest/stdout.json"
elif [ -s "$json" ]; then
  say "the check ended with status $rc (124: the ${deadline_s} s deadline); its document so far:"
  cat "$json"
else
  fail "the check ended with status $rc and wrote no document; see $out/device-check.log"
fi
exit "$rc"
