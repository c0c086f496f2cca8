#!/bin/sh
# Checks the NEON kernels on a machine that is not arm64: builds
# test_kernels for aarch64 Linux (static, from the sources it needs, no
# cmocka) and runs it under qemu twice, as a Cortex-A72 (NEON without the
# dot-product instructions) and as qemu's "max" CPU (with them), telling
# the test which one to expect.
#
#   tests/unit/cross_neon.sh SOURCE_DIR BUILD_DIR
#
# Exits 77 (skipped) when the cross compiler or qemu is absent: Debian's
# gcc-aarch64-linux-gnu and qemu-user, which deploy/install-deps.sh
# installs; on macOS there is no such pair, and an arm64 Mac runs the NEON
# path natively in the unit test itself.
set -eu
src=$1
out=$2
cc=${MLX_CROSS_CC:-aarch64-linux-gnu-gcc}
qemu=${MLX_QEMU:-qemu-aarch64}
for tool in "$cc" "$qemu"; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "skipped: $tool is not installed (Debian: gcc-aarch64-linux-gnu and" \
            "qemu-user, see deploy/install-deps.sh)"
        exit 77
    fi
done
mkdir -p "$out"
flags="-std=c17 -O2 -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes
  -Wmissing-prototypes -Wno-unused-parameter -Wno-missing-field-initializers
  -D_DEFAULT_SOURCE -D_POSIX_C_SOURCE=200809L -ffp-contract=off -I$src"
objs=""
for f in agent/engine/kernels.c agent/engine/kernels_scalar.c agent/engine/kernels_neon.c \
    agent/engine/kernels_neon_q.c agent/engine/kernels_neon_qdot.c agent/engine/quant.c \
    agent/engine/quant_k.c agent/engine/gguf_types.c common/log.c common/clock.c \
    common/err.c tests/unit/test_kernels.c; do
    extra=""
    case $f in
    */kernels.c) extra="-DMLX_KERNELS_NEON" ;;
    */kernels_neon_qdot.c) extra="-march=armv8.2-a+dotprod" ;;
    esac
    o="$out/$(basename "$f" .c).o"
    # shellcheck disable=SC2086 # flags are words
    "$cc" $flags $extra -c "$src/$f" -o "$o"
    objs="$objs $o"
done
# shellcheck disable=SC2086
"$cc" -static -o "$out/test_kernels" $objs -lm -lpthread
echo "== cortex-a72: NEON without the dot-product instructions"
"$qemu" -cpu cortex-a72 "$out/test_kernels" --expect-dotprod=no --expect-best=neon
echo "== max: NEON with SDOT"
"$qemu" -cpu max "$out/test_kernels" --expect-dotprod=yes --expect-best=neon
