#!/bin/sh
# `mlx-agent model synth` as a user runs it: the same flags give the same
# bytes, --json reports what was written, and bad usage exits 2 with a
# sentence and no file.
set -eu
bin=$1
dir=$(mktemp -d "${TMPDIR:-/tmp}/mlx-synth-cli-XXXXXX")
trap 'rm -rf "$dir"' EXIT
agent="$bin/mlx-agent"

fail() {
    echo "FAIL: $*"
    exit 1
}

"$agent" model synth --out "$dir/a.gguf" --type q8_0 --seed 7 >"$dir/out.txt" ||
    fail "synth exited $?"
grep -q "^wrote $dir/a.gguf: 2 layers, dim 128, Q8_0, 21 tensors" "$dir/out.txt" ||
    fail "unexpected output: $(cat "$dir/out.txt")"
"$agent" model synth --out "$dir/b.gguf" --type Q8_0 --seed 7 --json >"$dir/out.json"
cmp -s "$dir/a.gguf" "$dir/b.gguf" || fail "the same flags gave different files"
size=$(wc -c <"$dir/a.gguf" | tr -d ' ')
grep -q "\"bytes\":$size," "$dir/out.json" || fail "--json: $(cat "$dir/out.json")"
grep -q '"tensors":21,' "$dir/out.json" || fail "--json: $(cat "$dir/out.json")"
MLX_SEED=8 "$agent" model synth --out "$dir/c.gguf" --type q8_0 >/dev/null
cmp -s "$dir/a.gguf" "$dir/c.gguf" && fail "another seed gave the same file"

expect_usage() {
    words=$1
    shift
    status=0
    "$agent" model synth "$@" >"$dir/bad.out" 2>"$dir/bad.err" || status=$?
    [ "$status" -eq 2 ] || fail "'$*' exited $status, not 2"
    grep -q -- "$words" "$dir/bad.err" || fail "'$*' said: $(cat "$dir/bad.err")"
    [ ! -e "$dir/bad.gguf" ] || fail "'$*' left a file"
}
expect_usage "--out FILE is required"
expect_usage "not divisible by --heads" --out "$dir/bad.gguf" --dim 100 --heads 3
expect_usage "not divisible by --kv-heads" --out "$dir/bad.gguf" --kv-heads 3
expect_usage "multiples of 32" --out "$dir/bad.gguf" --ff 100 --type q4_0
expect_usage "not a type synth writes" --out "$dir/bad.gguf" --type q4_k
expect_usage "layers" --out "$dir/bad.gguf" --layers 0
expect_usage "vocab" --out "$dir/bad.gguf" --vocab 12
expect_usage "dim" --out "$dir/bad.gguf" --dim 12x

"$agent" model synth --help >"$dir/help.txt" || fail "--help exited $?"
grep -q -- "--kv-heads" "$dir/help.txt" || fail "--help lacks --kv-heads"
echo "PASS"
