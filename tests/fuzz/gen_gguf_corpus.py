#!/usr/bin/env python3
"""Writes the GGUF fuzz corpus (tests/fuzz/corpus/gguf/): a few small valid
files the fuzzer starts from, and one malformed file per way a GGUF header
can be wrong. Each file is a few hundred bytes at most. The replay test
(gguf_corpus_test.c) expects every bad-* file to be refused with the
sentence named in its table and every valid-* file to open.

Run from the repository root after changing it:
    python3 tests/fuzz/gen_gguf_corpus.py
"""
import os
import struct

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "gguf")

# Value types and tensor types, as the format numbers them.
U8, I8, U16, I16, U32, I32, F32, BOOL, STR, ARR, U64, I64, F64 = range(13)
T_F32, T_F16, T_Q8_0 = 0, 1, 8


def u32(v):
    return struct.pack("<I", v)


def u64(v):
    return struct.pack("<Q", v)


def string(s):
    b = s.encode() if isinstance(s, str) else s
    return u64(len(b)) + b


SCALARS = {U8: "<B", I8: "<b", U16: "<H", I16: "<h", U32: "<I", I32: "<i",
           F32: "<f", BOOL: "<B", U64: "<Q", I64: "<q", F64: "<d"}


def value(t, v):
    if t == STR:
        return string(v)
    if t == ARR:
        elem, items = v
        body = b"".join(value(elem, x) for x in items)
        return u32(elem) + u64(len(items)) + body
    return struct.pack(SCALARS[t], v)


def kv(key, t, v):
    return string(key) + u32(t) + value(t, v)


def tensor(name, dims, ttype, offset):
    return (string(name) + u32(len(dims)) + b"".join(u64(d) for d in dims) +
            u32(ttype) + u64(offset))


def gguf(kvs, tensors, data=b"", version=3, align=32, n_kv=None, n_tensors=None,
         pad=True):
    head = (b"GGUF" + u32(version) +
            u64(len(tensors) if n_tensors is None else n_tensors) +
            u64(len(kvs) if n_kv is None else n_kv))
    body = head + b"".join(kvs) + b"".join(tensors)
    if pad:
        body += b"\0" * (-len(body) % align)
    return body + data


ARCH = kv("general.architecture", STR, "llama")
F32_2x3 = struct.pack("<6f", 1, 2, 3, 4, 5, 6)
Q8_BLOCK = struct.pack("<H", 0x3c00) + bytes(range(32))


def corpus():
    every_type = [
        ARCH,
        kv("t.u8", U8, 200), kv("t.i8", I8, -5), kv("t.u16", U16, 60000),
        kv("t.i16", I16, -300), kv("t.u32", U32, 7), kv("t.i32", I32, -7),
        kv("t.f32", F32, 0.5), kv("t.bool", BOOL, 1), kv("t.u64", U64, 1 << 40),
        kv("t.i64", I64, -(1 << 40)), kv("t.f64", F64, 2.5),
        kv("tokenizer.ggml.tokens", ARR, (STR, ["<unk>", "<s>", "</s>", "a"])),
        kv("tokenizer.ggml.scores", ARR, (F32, [0.0, 0.0, 0.0, -1.0])),
        kv("a.bool", ARR, (BOOL, [0, 1])),
    ]
    two = [tensor("w", [3, 2], T_F32, 0), tensor("q", [32], T_Q8_0, 32)]
    data = F32_2x3 + b"\0" * 8 + Q8_BLOCK + b"\0" * 30
    yield "valid-minimal", gguf([], [])
    yield "valid-every-type", gguf(every_type, two, data)
    yield "valid-v2-align64", gguf(
        [ARCH, kv("general.alignment", U32, 64)],
        [tensor("w", [3, 2], T_F32, 0), tensor("h", [4], T_F16, 64)],
        F32_2x3 + b"\0" * 40 + b"\0" * 8, version=2, align=64)

    # The reader takes any integer type for the alignment; the writer only
    # writes UINT32, so copying this file back out must be refused cleanly.
    yield "valid-alignment-u8", gguf(
        [kv("general.alignment", U8, 64)], [tensor("w", [3, 2], T_F32, 0)],
        F32_2x3 + b"\0" * 40, align=64)

    yield "bad-empty", b""
    yield "bad-not-gguf", b"\x7fELF\x02\x01\x01" + b"\0" * 40
    yield "bad-truncated-header", gguf([], [])[:13]
    yield "bad-v1", b"GGUF" + u32(1) + u32(0) + u32(0)
    yield "bad-version-4", gguf([], [], version=4)
    yield "bad-big-endian", b"GGUF" + struct.pack(">I", 3) + u64(0) + u64(0)
    yield "bad-huge-kv-count", gguf([ARCH], [], n_kv=1 << 62)
    yield "bad-huge-tensor-count", gguf([ARCH], [], n_tensors=(1 << 64) - 1)
    yield "bad-counts-past-end", gguf([ARCH], [], n_kv=2000)
    yield "bad-truncated-key", (gguf([], [], n_kv=1, pad=False) + u64(100) +
                                b"general.ar")
    yield "bad-truncated-kv", gguf([ARCH, kv("x.count", U64, 5)], [], pad=False)[:-3]
    yield "bad-truncated-array", gguf(
        [kv("x.list", ARR, (I32, [1, 2, 3, 4]))], [], pad=False)[:-5]
    yield "bad-huge-string-length", (gguf([], [], n_kv=1, pad=False) +
                                     string("general.name") + u32(STR) +
                                     u64(1 << 62) + b"abc")
    yield "bad-key-too-long", (gguf([], [], n_kv=1, pad=False) + u64(70000) +
                               b"k" * 40)
    yield "bad-empty-key", gguf([kv("", U32, 1)], [])
    yield "bad-nul-in-key", gguf([kv("general.name\0x", U32, 1)], [])
    yield "bad-tensor-nul-in-name", gguf([ARCH], [tensor("w\0", [4], T_F32, 0)],
                                         b"\0" * 32)
    yield "bad-huge-array-count", (gguf([], [], n_kv=1, pad=False) + string("x.a") +
                                   u32(ARR) + u32(U8) + u64(1 << 60) + b"\1\2\3")
    yield "bad-unknown-value-type", (gguf([], [], n_kv=1, pad=False) + string("x.v") +
                                     u32(13) + u64(0))
    yield "bad-nested-array", (gguf([], [], n_kv=1, pad=False) + string("x.nest") +
                               u32(ARR) + u32(ARR) + u64(1) + u32(U8) + u64(1) + b"\0")
    yield "bad-array-unknown-type", (gguf([], [], n_kv=1, pad=False) + string("x.a") +
                                     u32(ARR) + u32(99) + u64(1) + b"\0" * 8)
    yield "bad-bool-value", (gguf([], [], n_kv=1, pad=False) + string("x.flag") +
                             u32(BOOL) + b"\2")
    yield "bad-duplicate-key", gguf([ARCH, kv("x.k", U32, 1), kv("x.k", U32, 2)], [])
    yield "bad-alignment-zero", gguf([kv("general.alignment", U32, 0)], [])
    yield "bad-alignment-not-power-of-two", gguf([kv("general.alignment", U32, 48)], [])
    yield "bad-alignment-string", gguf([kv("general.alignment", STR, "32")], [])
    yield "bad-tensor-offset-out-of-range", gguf(
        [ARCH], [tensor("w", [3, 2], T_F32, 1 << 40)], F32_2x3)
    yield "bad-tensor-offset-misaligned", gguf(
        [ARCH], [tensor("w", [3, 2], T_F32, 8)], F32_2x3 + b"\0" * 16)
    yield "bad-tensor-past-end", gguf(
        [ARCH], [tensor("w", [3, 2], T_F32, 0)], F32_2x3[:20])
    yield "bad-tensor-overlap", gguf(
        [ARCH], [tensor("a", [16], T_F32, 0), tensor("b", [8], T_F32, 32)],
        b"\0" * 64)
    yield "bad-tensor-five-dims", gguf(
        [ARCH], [tensor("w", [1, 1, 1, 1, 1], T_F32, 0)], b"\0" * 32)
    yield "bad-tensor-zero-dim", gguf(
        [ARCH], [tensor("w", [3, 0], T_F32, 0)], b"\0" * 32)
    yield "bad-tensor-unknown-type", gguf(
        [ARCH], [tensor("w", [4], 4, 0)], b"\0" * 32)
    yield "bad-tensor-partial-block", gguf(
        [ARCH], [tensor("w", [33], T_Q8_0, 0)], b"\0" * 64)
    yield "bad-tensor-element-overflow", gguf(
        [ARCH], [tensor("w", [1 << 40, 1 << 40], T_F32, 0)], b"\0" * 32)
    yield "bad-tensor-duplicate-name", gguf(
        [ARCH], [tensor("w", [4], T_F32, 0), tensor("w", [4], T_F32, 32)], b"\0" * 64)
    yield "bad-tensor-name-too-long", gguf(
        [ARCH], [tensor("n" * 64, [4], T_F32, 0)], b"\0" * 32)
    yield "bad-tensor-empty-name", gguf([ARCH], [tensor("", [4], T_F32, 0)], b"\0" * 32)
    yield "bad-truncated-tensor-info", gguf(
        [ARCH], [tensor("w", [3, 2], T_F32, 0)], pad=False)[:-6]
    yield "bad-no-data-section", gguf(
        [ARCH], [tensor("w", [3, 2], T_F32, 0)], pad=False)


def main():
    os.makedirs(OUT, exist_ok=True)
    for name, data in corpus():
        assert len(data) < 4096, name
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main()
