#!/bin/sh
# Checks the NEON kernels on a machine that is not arm64: builds
# test_kernels and forward_paths for aarch64 Linux (static, from the sources
# they need, no cmocka) and runs them under qemu, as a Cortex-A72 (NEON
# without the dot-product instructions) and as qemu's "max" CPU (with
# them): the kernels against the scalar ones and quant.h, and the forward
# pass of every shared test model on NEON against the scalar path.
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
    common/err.c common/parse.c tests/unit/test_kernels.c; do
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
# The forward pass on the NEON path against the scalar path (forward_paths.c):
# the kernel objects above and the rest of the engine.
fwd=""
for f in agent/engine/gguf.c agent/engine/gguf_get.c agent/engine/gguf_tensors.c \
    agent/engine/model.c agent/engine/forward.c agent/engine/batch.c agent/engine/seq.c \
    agent/engine/pool.c common/alloc.c common/buf.c common/path.c \
    tests/unit/forward_paths.c; do
    o="$out/$(basename "$f" .c).o"
    # shellcheck disable=SC2086
    "$cc" $flags -c "$src/$f" -o "$o"
    fwd="$fwd $o"
done
# shellcheck disable=SC2086
"$cc" -static -o "$out/forward_paths" $fwd $(echo $objs | tr ' ' '\n' | grep -v test_kernels.o) \
    -lm -lpthread
echo "== cortex-a72: NEON without the dot-product instructions"
"$qemu" -cpu cortex-a72 "$out/test_kernels" --expect-dotprod=no --expect-best=neon
echo "== max: NEON with SDOT"
"$qemu" -cpu max "$out/test_kernels" --expect-dotprod=yes --expect-best=neon
testdata=${MLX_TESTDATA:-$src/../shared/testdata}
if [ -r "$testdata/stories260K.gguf" ]; then
    for cpu in cortex-a72 max; do
        echo "== $cpu: the forward pass on NEON against the scalar path"
        "$qemu" -cpu "$cpu" "$out/forward_paths" "$testdata"
    done
else
    echo "(the forward pass is not checked: no shared test models in $testdata)"
fi
