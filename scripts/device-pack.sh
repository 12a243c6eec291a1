#!/usr/bin/env bash
# Build .device/: what the GPU device check needs on a bare machine with no network and no Node.js,
# compressed to fit the device tool's 64 MiB (working tree + carried paths), with a margin: 60 MiB.
#
#   bash scripts/device-pack.sh            # then: device run, command "bash scripts/device-check.sh",
#                                          # carry [".device", ".gl"], timeout_s 540
#
# .device/node.xz          this machine's node binary, stripped (cached while the binary is the same)
# .device/native.tar.xz    onnxruntime-node's linux-x64 binding + libonnxruntime, sharp + libvips,
#                          webgpu's dawn.node (cached while those files are the same)
# .device/app.tar.xz       dist/ (no source maps), the node_modules files dist/bench/device-check.js
#                          loads (traced by running it here), models/default, images rendered here
# .device/SHA256SUMS       checked on the device before unpacking
# .gl/*.deb                the Vulkan/EGL loaders (libvulkan1 …) as the device README says, when
#                          apt-get can fetch them here (the device image may lack libvulkan.so.1)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
budget_mib=${DEVICE_PACK_BUDGET_MIB:-60}
out=.device
mkdir -p "$out"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
say() { printf 'device-pack: %s\n' "$*" >&2; }
die() { say "ERROR: $*"; exit 1; }

[ "$(uname -m)" = x86_64 ] || die "the device is x86-64 and this machine is $(uname -m): build the bundle on an x86-64 machine"
command -v xz >/dev/null || die "xz not found: apt-get install xz-utils"
node_bin=$(readlink -f "$(command -v node)") || die "node not found on PATH"

say "building dist/ (tsc -p tsconfig.build.json)"
npx tsc -p tsconfig.build.json || die "the build failed: fix the TypeScript errors above first"
[ -f dist/bench/device-check.js ] || die "dist/bench/device-check.js is missing after the build"

# A stamp per cached archive: the paths, sizes and modification times of what went into it.
stamp() { for f in "$@"; do stat -c '%n %s %Y' "$f"; done; }
fresh() { [ -f "$out/$1" ] && [ -f "$out/$1.stamp" ] && [ "$(cat "$out/$1.stamp")" = "$2" ]; }

# --- node --------------------------------------------------------------------------------------
s=$(stamp "$node_bin")
if fresh node.xz "$s"; then
  say "node.xz is current ($node_bin)"
else
  say "compressing $node_bin ($("$node_bin" -v), stripped) — about a minute and a half"
  cp "$node_bin" "$tmp/node"
  strip "$tmp/node" 2>/dev/null || say "strip not found: the node binary travels with its debug info"
  xz -9 -T1 -c "$tmp/node" >"$out/node.xz.part" && mv "$out/node.xz.part" "$out/node.xz"
  echo "$s" >"$out/node.xz.stamp"
fi

# --- native libraries (linux-x64 only) ---------------------------------------------------------
native=(
  node_modules/onnxruntime-node/bin/napi-v6/linux/x64/onnxruntime_binding.node
  node_modules/onnxruntime-node/bin/napi-v6/linux/x64/libonnxruntime.so.1
  node_modules/webgpu/dist/linux-x64/dawn.node
)
while IFS= read -r f; do native+=("$f"); done < <(find node_modules/@img/sharp-linux-x64 node_modules/@img/sharp-libvips-linux-x64 -type f \( -name '*.node' -o -name '*.so*' \) | sort)
for f in "${native[@]}"; do [ -f "$f" ] || die "$f is missing: run npm ci (on linux-x64) first"; done
s=$(stamp "${native[@]}")
if fresh native.tar.xz "$s"; then
  say "native.tar.xz is current"
else
  say "compressing ${#native[@]} native libraries — about two minutes"
  tar -cf - "${native[@]}" | xz -9 -T1 >"$out/native.tar.xz.part" && mv "$out/native.tar.xz.part" "$out/native.tar.xz"
  echo "$s" >"$out/native.tar.xz.stamp"
fi

# --- app: images, traced node_modules, dist, model ---------------------------------------------
app="$tmp/app"
mkdir -p "$app/models/default"
say "rendering crops and 1280×960 frames with the simulator"
node dist/bench/device-check.js --render-images "$app/device-images" --crops "${DEVICE_PACK_CROPS:-64}" --frames "${DEVICE_PACK_FRAMES:-4}"

# Every file Node resolves while the check runs here (CommonJS through Module._resolveFilename,
# ESM through a resolve hook), plus the GPU-only modules the check imports only where a GPU is.
cat >"$tmp/trace-hooks.mjs" <<'EOF'
import { appendFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
export async function resolve(specifier, context, next) {
  const r = await next(specifier, context);
  if (r.url.startsWith('file:')) appendFileSync(process.env.CW_TRACE_FILE, fileURLToPath(r.url) + '\n');
  return r;
}
EOF
cat >"$tmp/trace.mjs" <<'EOF'
import Module, { register } from 'node:module';
import { appendFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
const original = Module._resolveFilename;
Module._resolveFilename = function (...args) {
  const r = original.apply(this, args);
  if (r.startsWith('/')) appendFileSync(process.env.CW_TRACE_FILE, r + '\n');
  return r;
};
register(pathToFileURL(process.env.CW_TRACE_HOOKS).href);
EOF
export CW_TRACE_FILE="$tmp/trace.txt" CW_TRACE_HOOKS="$tmp/trace-hooks.mjs"
say "tracing what the check loads (a short CPU run here)"
# NODE_OPTIONS, so the check's step processes and their inference workers are traced too.
NODE_OPTIONS="--import $tmp/trace.mjs" node dist/bench/device-check.js --images "$app/device-images" --seconds 0.05 --budget-s 240 --out "$tmp/trace-run.json" >/dev/null 2>"$tmp/trace-run.log" ||
  { cat "$tmp/trace-run.log" >&2; die "the traced run of dist/bench/device-check.js failed"; }
node --import "$tmp/trace.mjs" --input-type=module -e "
  await import('webgpu');
  await import('@tensorflow/tfjs');
  globalThis.navigator = { gpu: {} }; // the webgpu backend registers itself only where navigator.gpu is
  await import('@tensorflow/tfjs-backend-webgpu');
  await import('onnxruntime-node');
  await import('sharp');
" || die "importing the GPU-only modules for the trace failed"

# Traced files under node_modules, every package.json of their packages (Node reads the nearest
# one for a file's module type: onnxruntime-common/dist/cjs/package.json says "commonjs"), and
# small packages required lazily.
{
  sed -n "s|^$root/||p" "$CW_TRACE_FILE" | grep '^node_modules/'
  sed -n "s|^$root/||p" "$CW_TRACE_FILE" | grep '^node_modules/' | sed -E 's#^(node_modules/(@[^/]+/)?[^/]+)/.*#\1#' | sort -u |
    while IFS= read -r pkg; do find "$pkg" -name package.json -type f; done
  for p in node-fetch whatwg-url tr46 webidl-conversions seedrandom long; do
    [ -d "node_modules/$p" ] && find "node_modules/$p" -type f \( -name '*.js' -o -name '*.json' -o -name '*.cjs' -o -name '*.mjs' \) -not -path '*/test/*'
  done
} | grep -v -E '\.(node|so(\.[0-9]+)*)$' | sort -u | while IFS= read -r f; do [ -f "$f" ] && echo "$f"; done >"$tmp/files.txt"
say "$(wc -l <"$tmp/files.txt") node_modules files traced"
grep -q '^node_modules/@tensorflow/tfjs-backend-webgpu/' "$tmp/files.txt" || die "the trace holds no @tensorflow/tfjs-backend-webgpu file"
grep -q '^node_modules/webgpu/index.js$' "$tmp/files.txt" || die "the trace holds no webgpu/index.js"
tar -cf - -T "$tmp/files.txt" | tar -xf - -C "$app"
(cd dist && find . -type f -name '*.js' | tar -cf - -T -) | (mkdir -p "$app/dist" && tar -xf - -C "$app/dist")
find models/default -maxdepth 1 -type f -exec cp {} "$app/models/default/" \;
cp package.json "$app/"
say "compressing the app (dist, traced node_modules, model, images)"
tar -C "$app" -cf - . | xz -9 -T1 >"$out/app.tar.xz"

(cd "$out" && sha256sum node.xz native.tar.xz app.tar.xz >SHA256SUMS)

# --- Vulkan/EGL loaders, as /work/.library/device/README.md says ------------------------------
if ! ls .gl/*.deb >/dev/null 2>&1 && [ -z "${DEVICE_PACK_NO_GL:-}" ]; then
  say "fetching the Vulkan/EGL loaders into .gl/ (apt-get download)"
  mkdir -p .gl "$tmp/amd64/partial"
  o=(-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 "-oDir::State::Lists=$tmp/amd64")
  if apt-get "${o[@]}" update >/dev/null 2>&1 && (cd .gl && apt-get "${o[@]}" download libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2 >/dev/null 2>&1); then
    say ".gl: $(ls .gl | tr '\n' ' ')"
  else
    rmdir .gl 2>/dev/null || true
    say "WARNING: could not fetch the loaders; the device check still runs, and WebGPU is absent where the image has no libvulkan.so.1"
  fi
fi

# --- the budget --------------------------------------------------------------------------------
tree=$(git ls-files -z --cached --others --exclude-standard | xargs -0 stat -c %s 2>/dev/null | awk '{s+=$1} END {print s+0}')
device=$(du -cb "$out"/node.xz "$out"/native.tar.xz "$out"/app.tar.xz "$out"/SHA256SUMS | tail -1 | cut -f1)
gl=$( (ls .gl/*.deb >/dev/null 2>&1 && du -cb .gl/*.deb | tail -1 | cut -f1) || echo 0)
stale=$(find "$out" -type f -not -name 'node.xz*' -not -name 'native.tar.xz*' -not -name app.tar.xz -not -name SHA256SUMS | wc -l)
[ "$stale" = 0 ] || say "WARNING: $out holds $stale other file(s); they travel too: remove them"
total=$((tree + device + gl))
mib() { awk -v b="$1" 'BEGIN {printf "%.1f MiB", b / 1048576}'; }
say "node.xz $(mib "$(stat -c %s "$out/node.xz")"), native.tar.xz $(mib "$(stat -c %s "$out/native.tar.xz")"), app.tar.xz $(mib "$(stat -c %s "$out/app.tar.xz")")"
say "bundle .device $(mib "$device") + .gl $(mib "$gl") + working tree $(mib "$tree") = $(mib "$total") (budget $budget_mib MiB of the device tool's 64)"
[ "$total" -le $((budget_mib * 1048576)) ] || die "over budget by $(mib $((total - budget_mib * 1048576))): render fewer frames (DEVICE_PACK_FRAMES=2) or carry less"
echo "$total"
