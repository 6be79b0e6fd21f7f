#!/usr/bin/env bash
# tests/fuzz/run.sh [seconds [harness ...]]: builds the libFuzzer harnesses
# with clang under ASan + UBSan into build-fuzz/, then runs each for
# `seconds` (default 60) at the lowest priority (nice), one after another.
#
#   idx           nn_read_idx on the input as an IDX file, plain or gzip
#   safetensors   nn_safetensors_read_header + nn_safetensors_read, with
#                 entries taken from the input (see fuzz_safetensors.c)
#   load          nn.load in a Lua state: the Lua header parser and checks,
#                 the binding and the engine together (safetensors and .pt)
#   pt            nn_pt_read, the reader of torch.save files: the ZIP
#                 container, and the pickle wrapped in a valid one (see
#                 fuzz_pt.c)
#
# Each keeps its corpus in build-fuzz/corpus/<name> (seeded on first use
# from small valid files, tests/fixtures/*.safetensors and tests/fixtures/pt)
# and grows it run
# after run; a crashing input lands in build-fuzz/artifacts/. The summary
# gives each harness's executions, coverage (libFuzzer's cov: and ft:) and
# crashes; the exit status is 1 when anything crashed.
#
#   tests/fuzz/run.sh 600                # ten minutes each
#   tests/fuzz/run.sh 30 idx             # one harness
#   build-fuzz/fuzz_idx build-fuzz/artifacts/idx-crash-...   # replay one
set -euo pipefail
cd "$(dirname "$0")/../.."

seconds=${1:-60}
shift || true
harnesses=("$@")
[[ ${#harnesses[@]} -gt 0 ]] || harnesses=(idx safetensors load pt)
for h in "${harnesses[@]}"; do
  [[ -f tests/fuzz/fuzz_$h.c ]] || { echo "run.sh: no harness tests/fuzz/fuzz_$h.c" >&2; exit 2; }
done

CC=${CC:-clang}
out=build-fuzz
mkdir -p "$out/engine" "$out/binding" "$out/artifacts"

sanitize=(-fsanitize=address,undefined -fno-sanitize-recover=all)
cflags=(-g -O1 -std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -fno-omit-frame-pointer
        "${sanitize[@]}" -fsanitize=fuzzer-no-link -Iengine/include -Iengine/src -Ilua
        $(pkg-config --cflags openblas lua5.4))
libs=($(pkg-config --libs openblas zlib) -lm -lpthread)

# compile SRC OBJ: recompiles when the source or a header is newer.
compile() {
  local src=$1 obj=$2
  if [[ ! -f $obj || $src -nt $obj || -n $(find engine/include engine/src lua tests/fuzz -name '*.h' -newer "$obj" -print -quit) ]]; then
    nice "$CC" "${cflags[@]}" -c "$src" -o "$obj"
  fi
}

echo "==== building the harnesses ($CC, ASan + UBSan)"
engine_objs=()
for src in engine/src/*.c engine/src/backends/*.c; do
  [[ -f $src ]] || continue
  obj=$out/engine/$(basename "${src%.c}").o
  compile "$src" "$obj"
  engine_objs+=("$obj")
done

for h in "${harnesses[@]}"; do
  objs=("${engine_objs[@]}")
  extra=()
  if [[ $h == load ]]; then
    # the binding, with the Lua modules embedded as the CMake build does
    cmake -DLUA_ROOT="$PWD/lua" -DOUTPUT="$PWD/$out/binding/nn_lua_sources.c" -P cmake/embed_lua.cmake
    for src in lua/nn_*.c "$out/binding/nn_lua_sources.c"; do
      obj=$out/binding/$(basename "${src%.c}").o
      compile "$src" "$obj"
      objs+=("$obj")
    done
    extra=($(pkg-config --libs lua5.4) -ldl)
  fi
  compile "tests/fuzz/fuzz_$h.c" "$out/fuzz_$h.o"
  nice "$CC" -fsanitize=fuzzer "${sanitize[@]}" "$out/fuzz_$h.o" "${objs[@]}" "${extra[@]}" "${libs[@]}" \
    -o "$out/fuzz_$h"
done

# ---- seeds: small valid inputs, each written once --------------------------
seed() { # seed NAME FILE BYTES (printf format)
  mkdir -p "$out/corpus/$1"
  # shellcheck disable=SC2059
  [[ -f $out/corpus/$1/$2 ]] || printf "$3" > "$out/corpus/$1/$2"
}
# a safetensors file: 8-byte little-endian header length, header, data
safetensors() { # safetensors HEADER DATA (printf format)
  local n
  # shellcheck disable=SC2059
  n=$(printf "$1" | wc -c)
  printf '\\x%02x\\x%02x\\x00\\x00\\x00\\x00\\x00\\x00%s%s' $((n & 255)) $((n >> 8)) "$1" "$2"
}
a_f32='{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,12]}}'
two='{"a":{"dtype":"F16","shape":[2,1],"data_offsets":[0,4]},"b":{"dtype":"BOOL","shape":[],"data_offsets":[4,5]}}'
checkpoint='{"__metadata__":{"nnlua.structure":"{\\"epoch\\":2,\\"w\\":{\\"$tensor\\":\\"w\\"},\\"r\\":{\\"$bytes\\":\\"00ff\\"},\\"k\\":{\\"$pairs\\":[[1.5,{\\"$number\\":\\"nan\\"}]]}}"},"w":{"dtype":"I64","shape":[1],"data_offsets":[0,8]}}'
f32_data='\x00\x00\x80\x3f\x00\x00\x00\x40\x00\x00\x40\x40'
seed idx ubyte '\x00\x00\x08\x02\x00\x00\x00\x02\x00\x00\x00\x03\x01\x02\x03\x04\x05\x06'
seed idx int32 '\x00\x00\x0c\x01\x00\x00\x00\x02\xff\xff\xff\xf9\x7f\xff\xff\xff'
seed idx float64 '\x00\x00\x0e\x01\x00\x00\x00\x01\x3f\xf8\x00\x00\x00\x00\x00\x00'
seed idx int16 '\x00\x00\x0b\x01\x00\x00\x00\x02\xfe\xd4\x01\x2c'
for f in ubyte float64; do
  [[ -f $out/corpus/idx/$f.gz ]] || gzip -9 -c "$out/corpus/idx/$f" > "$out/corpus/idx/$f.gz"
done
# 100x1000 zero bytes in about a hundred compressed ones: the tensor must
# grow as the data arrives
if [[ ! -f $out/corpus/idx/zeros.gz ]]; then
  { printf '\x00\x00\x08\x02\x00\x00\x00\x64\x00\x00\x03\xe8'; head -c 100000 /dev/zero; } |
    gzip -9 > "$out/corpus/idx/zeros.gz"
fi
# one entry (F32, rank 1, [3], bytes 0..12) before the file
seed safetensors f32 "\\x01\\x00\\x02\\x00\\x00\\x00\\x03\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x0c$(safetensors "$a_f32" "$f32_data")"
seed safetensors two "\\x02\\x04\\x03\\x00\\x00\\x00\\x02\\x00\\x00\\x00\\x01\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x04\\x03\\x01\\x00\\x00\\x00\\x04\\x00\\x00\\x00\\x05$(safetensors "$two" '\x00\x3c\x00\xc0\x01')"
seed load f32 "$(safetensors "$a_f32" "$f32_data")"
seed load two "$(safetensors "$two" '\x00\x3c\x00\xc0\x01')"
seed load checkpoint "$(safetensors "$checkpoint" '\x07\x00\x00\x00\x00\x00\x00\x00')"
cp -n tests/fixtures/*.safetensors "$out/corpus/load/"
# torch.save files, as they are (first byte odd) and as a pickle for the
# harness to wrap (even: length, pickle, storage bytes)
mkdir -p "$out/corpus/pt"
for f in tests/fixtures/pt/*.pt tests/fixtures/pt/hostile/*.pt; do
  name=$(basename "$f" .pt)
  [[ -f $out/corpus/pt/file-$name ]] || { printf '\x01'; cat "$f"; } > "$out/corpus/pt/file-$name"
  cp -n "$f" "$out/corpus/load/pt-$name"
  [[ -f $out/corpus/pt/pickle-$name ]] || python3 - "$f" "$out/corpus/pt/pickle-$name" <<'PY'
import struct, sys, zipfile
try:  # a hostile file may not open, or not read: it is seeded as a file only
    z = zipfile.ZipFile(sys.argv[1])
    names = z.namelist()
    pkl = [n for n in names if n.endswith("/data.pkl")]
    pickle = z.read(pkl[0])[:65535]
    records = sorted((n for n in names if "/data/" in n), key=lambda n: n.rsplit("/", 1)[1])
    data = b"".join(z.read(n) for n in records)
except Exception:
    sys.exit(0)
with open(sys.argv[2], "wb") as f:
    f.write(bytes([0]) + struct.pack(">H", len(pickle)) + pickle + data)
PY
done
# the words of a safetensors header, for the harness whose parser is Lua
cat > "$out/load.dict" <<'EOF'
"{"
"}"
"["
"]"
":"
","
"null"
"true"
"false"
"\"dtype\""
"\"shape\""
"\"data_offsets\""
"\"__metadata__\""
"\"nnlua.structure\""
"\"F32\""
"\"F64\""
"\"F16\""
"\"BF16\""
"\"I64\""
"\"I32\""
"\"U8\""
"\"BOOL\""
"$tensor"
"$pairs"
"$bytes"
"$number"
"\\u"
"\\\""
"1e308"
"-0"
"0.5"
"9223372036854775807"
"9223372036854775808"
"18446744073709551615"
EOF

# the opcodes and names of a torch.save pickle, and the ZIP's signatures
cat > "$out/pt.dict" <<'EOF'
"PK\x03\x04"
"PK\x01\x02"
"PK\x05\x06"
"PK\x06\x06"
"PK\x06\x07"
"\x80\x02"
"ccollections\x0aOrderedDict\x0a"
"ctorch._utils\x0a_rebuild_tensor_v2\x0a"
"ctorch._utils\x0a_rebuild_parameter\x0a"
"ctorch\x0aFloatStorage\x0a"
"ctorch\x0aLongStorage\x0a"
"ctorch\x0aHalfStorage\x0a"
"ctorch\x0aSize\x0a"
"c_codecs\x0aencode\x0a"
"X\x07\x00\x00\x00storage"
"X\x03\x00\x00\x00cpu"
"X\x06\x00\x00\x00latin1"
"X\x01\x00\x00\x000"
"archive/data/0"
"archive/data.pkl"
"archive/byteorder"
")R"
"tQ"
"\x85"
"\x86"
"\x87"
"\x88"
"\x89"
"\x8a\x08"
"\x93"
"\x94"
"\x95"
"q\x00"
"h\x00"
"r\x00\x01\x00\x00"
"j\x00\x01\x00\x00"
"(}"
"u."
EOF

# ---- the runs -------------------------------------------------------------
summary=()
crashed=0
for h in "${harnesses[@]}"; do
  log=$out/fuzz_$h.log
  before=$(find "$out/artifacts" -name "$h-*" | wc -l)
  opts=(-max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=16384
        -print_final_stats=1 -artifact_prefix="$out/artifacts/$h-")
  [[ $h == load ]] && opts+=(-dict="$out/load.dict")
  [[ $h == pt ]] && opts+=(-dict="$out/pt.dict")
  echo "==== fuzz_$h for ${seconds}s (log: $log)"
  set +e
  nice -n 19 "$out/fuzz_$h" "${opts[@]}" "$out/corpus/$h" > "$log" 2>&1
  status=$?
  set -e
  after=$(find "$out/artifacts" -name "$h-*" | wc -l)
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  last=$(grep -E '^#[0-9]+' "$log" | tail -1)
  cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<< "$last")
  ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<< "$last")
  corpus=$(find "$out/corpus/$h" -type f | wc -l)
  crashes=$((after - before))
  if [[ $status -ne 0 && $crashes -eq 0 ]]; then crashes=1; fi
  [[ $crashes -eq 0 ]] || crashed=1
  summary+=("fuzz_$h: ${runs:-?} runs in ${seconds}s, cov ${cov:-?}, ft ${ft:-?}, corpus $corpus, crashes $crashes (exit $status)")
done
echo "==== summary"
printf '%s\n' "${summary[@]}"
exit $crashed
