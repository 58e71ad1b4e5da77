#!/usr/bin/env bash
# Malformed model folders, safetensors files and logits inputs through `rgemma generate` / `logits`, table
# by table: each one is refused with exit 2 (configuration: config.json, what the command line names) or 1
# (runtime I/O: a corrupt weights file), one line that names the file, never a crash (>= 128) or a hang.
# Usage: malformed_model_test.sh RGEMMA SOURCE_DIR
. "$(dirname "${BASH_SOURCE[0]}")/../tools/check_lib.sh"

# refuse NAME CODE TEXT -- command...: exit CODE, output contains TEXT, exactly one line. Commands run
# under `timeout 60` (gen, logits), so a read that blocks fails with 124 instead of hanging the suite.
refuse() {
  local name=$1 want=$2 text=$3; shift 4
  local out code
  out=$("$@" 2>&1); code=$?
  if [ "$code" != "$want" ]; then fail "$name: exit $code, expected $want"; echo "${out:0:2000}"; return; fi
  if ! grep -qF -- "$text" <<<"$out"; then fail "$name: output lacks '$text'"; echo "${out:0:2000}"; return; fi
  if [ "$(wc -l <<<"$out")" != 1 ]; then fail "$name: not one line"; echo "${out:0:2000}"; return; fi
  ok "$name"
}
le64() {  # an unsigned 64-bit little-endian integer, as safetensors' header length
  local n=$1 i
  for i in 0 1 2 3 4 5 6 7; do printf "\\x$(printf %02x $(( (n >> (8 * i)) & 255 )))"; done
}
st() {  # st OUT HEADER DATA_FILE: a safetensors file built by hand
  { le64 ${#2}; printf '%s' "$2"; cat "$3"; } > "$1"
}

"$rgemma" init --config "$src/configs/model/tiny.ini" --output "$tmp/good" >/dev/null || { fail init; exit 1; }
good=$tmp/good
gen() { timeout 60 "$rgemma" generate --model "$1" --prompt-ids 2,3 --max-new-tokens 2 --greedy "${@:2}"; }
variant() { rm -rf "$tmp/$1"; cp -r "$good" "$tmp/$1"; echo "$tmp/$1"; }
check_re good-folder 0 '^[0-9]+,[0-9]+$' -- gen "$good"

# --- config.json (exit 2) ------------------------------------------------------------------------------
config_case() {  # config_case NAME TEXT CONTENT: config.json replaced by CONTENT
  local d; d=$(variant "$1"); printf '%s' "$3" > "$d/config.json"
  refuse "config-$1" 2 "$2" -- gen "$d"
}
set_key() {  # the good config.json with "KEY": VALUE
  sed -E "s/\"$1\": [^,]*,/\"$1\": $2,/" "$good/config.json"
}
d=$(variant missing); rm "$d/config.json"
refuse config-missing 2 "$d/config.json: no such file" -- gen "$d"
config_case empty "not valid JSON" ""
config_case not-json "not valid JSON" "vocab_size = 256"
config_case array "expected a JSON object" "[1,2,3]"
deep="$(printf '%*s' 100000 '' | tr ' ' '[')1$(printf '%*s' 100000 '' | tr ' ' ']')"  # too long for sed's argv
text=$(set_key hidden_size @@)
config_case nested "nested deeper than 64 levels" "${text%%@@*}$deep${text#*@@}"
config_case string-width "field 'hidden_size': expected an integer" "$(set_key hidden_size '"64"')"
config_case nan "not valid JSON" "$(set_key rms_norm_eps NaN)"
config_case inf "number overflow parsing '1e999'" "$(set_key rms_norm_eps 1e999)"
config_case negative "width" "$(set_key hidden_size -64)"
config_case huge-int "field 'vocab_size': expected at most 2147483647" "$(set_key vocab_size 100000000000000)"
config_case huge-vocab "but 'model.embed_tokens.weight' in model.safetensors is [256,64]" "$(set_key vocab_size 16777216)"
config_case huge-window "attention_window" "$(set_key attention_window_size 4000000000)"
config_case huge-layers "num_hidden_layers" "$(set_key num_hidden_layers 1000000)"
config_case model-type "field 'model_type': 'llama' is not supported" "$(set_key model_type '"llama"')"
d=$(variant config-dir); rm "$d/config.json"; mkdir "$d/config.json"
refuse config-folder 2 "$d/config.json: is a folder" -- gen "$d"
d=$(variant config-fifo); rm "$d/config.json"; mkfifo "$d/config.json"
refuse config-fifo 2 "$d/config.json: is a FIFO" -- gen "$d"
refuse model-not-folder 2 "not a folder" -- gen "$good/config.json"
refuse model-missing 2 "$tmp/nope: no such folder" -- gen "$tmp/nope"

# --- model.safetensors (exit 1: the weights file is corrupt; 2 when it is not a file at all) -----------
w=$good/model.safetensors
n=$(od -An -tu8 -N8 "$w" | tr -d ' ')
header=$(tail -c +9 "$w" | head -c "$n")
tail -c +$((9 + n)) "$w" > "$tmp/data.bin"
size=$(stat -c %s "$w")
weights_case() {  # weights_case NAME CODE TEXT HEADER: the good data under another header
  local d; d=$(variant "$1"); st "$d/model.safetensors" "$4" "$tmp/data.bin"
  refuse "weights-$1" "$2" "$3" -- gen "$d"
}
first() { sed -E "0,/$1/s//$2/" <<<"$header"; }  # the header with the first match of $1 replaced
d=$(variant no-weights); rm "$d/model.safetensors"
refuse weights-missing 1 "no model.safetensors" -- gen "$d"
d=$(variant truncated); head -c $((size - 5)) "$w" > "$d/model.safetensors"
refuse weights-truncated 1 "truncated" -- gen "$d"
d=$(variant long-header); { le64 $((size + 100)); tail -c +9 "$w"; } > "$d/model.safetensors"
refuse weights-header-length 1 "bad header length" -- gen "$d"
weights_case header-not-json 1 "bad header JSON" '{"a" 1}'
weights_case header-nested 1 "nested deeper than 64 levels" "{\"__metadata__\":{\"a\":$deep}}"
weights_case offsets-past-end 1 "run past the data buffer" "$(first '"data_offsets":\[0,([0-9]+)\]' '"data_offsets":[0,99999999]')"
# final_norm (laid out last) moved 4 bytes back: the same size, overlapping the tensor before it.
fo=$(grep -o '"model.final_norm.weight":{"data_offsets":\[[0-9]*,[0-9]*\]' <<<"$header" | grep -o '[0-9]*,[0-9]*' | tail -1)
fa=${fo%,*} fb=${fo#*,}
weights_case overlap 1 "overlap" "$(sed "s/\"model.final_norm.weight\":{\"data_offsets\":\[$fa,$fb\]/\"model.final_norm.weight\":{\"data_offsets\":[$((fa - 4)),$((fb - 4))]/" <<<"$header")"
weights_case unknown-dtype 1 "unsupported dtype 'F8_E5M2'" "$(first '"dtype":"F32"' '"dtype":"F8_E5M2"')"
weights_case shape-overflow 1 "does not match its" "$(first '"shape":\[[0-9,]+\]' '"shape":[1099511627776,1099511627776]')"
weights_case wrong-shape 1 "wrong shape for 'model.final_norm.weight'" "$(sed 's/"model.final_norm.weight":{\([^}]*\)"shape":\[64\]/"model.final_norm.weight":{\1"shape":[2,32]/' <<<"$header")"
weights_case renamed-tensor 1 "missing tensor 'model.final_norm.weight'" "$(sed 's/"model.final_norm.weight"/"model.final_norm.weigh"/' <<<"$header")"
weights_case extra-tensor 1 "unexpected tensor 'model.final_norm.weigh'" "$(sed 's/"model.final_norm.weight"/"model.final_norm.weigh"/' <<<"$header")"
d=$(variant index); rm "$d/model.safetensors"
printf '{"weight_map": {"model.embed_tokens.weight": "model-00002-of-00002.safetensors"}}' > "$d/model.safetensors.index.json"
refuse index-missing-shard 1 "names shard 'model-00002-of-00002.safetensors', which is not in the folder" -- gen "$d"
d=$(variant nan); cp "$w" "$d/model.safetensors"
head -c $((size - 8 - n)) /dev/zero | tr '\0' '\377' | dd of="$d/model.safetensors" bs=1M seek=$((8 + n)) oflag=seek_bytes conv=notrunc status=none
refuse weights-nan 1 "NaN" -- gen "$d"
refuse weights-nan-sampled 1 "NaN" -- gen "$d" --temperature 0.7
d=$(variant weights-fifo); rm "$d/model.safetensors"; mkfifo "$d/model.safetensors"
refuse weights-fifo 2 "$d/model.safetensors: is a FIFO" -- gen "$d"
d=$(variant weights-device); rm "$d/model.safetensors"; ln -s /dev/zero "$d/model.safetensors"
refuse weights-device 2 "$d/model.safetensors: is a device" -- gen "$d"

# --- logits --input (exit 2: the file the command line names) ------------------------------------------
logits() { timeout 60 "$rgemma" logits --model "${2:-$good}" --input "$1" --output "$tmp/out.safetensors"; }
printf '\x02\x00\x00\x00\x03\x00\x00\x00\x05\x00\x00\x00' > "$tmp/ids.bin"          # int32 2, 3, 5
printf '\x00\x00\x00\x40\x00\x00\x40\x40\x00\x00\xa0\x40' > "$tmp/floats.bin"       # float32 2, 3, 5
printf '\x02\x00\x00\x00\x00\x01\x00\x00\x05\x00\x00\x00' > "$tmp/big-ids.bin"      # int32 2, 256, 5
st "$tmp/ok.safetensors" '{"tokens":{"dtype":"I32","shape":[1,3],"data_offsets":[0,12]}}' "$tmp/ids.bin"
check logits-ok 0 "1 x 3 tokens" -- logits "$tmp/ok.safetensors"
mkfifo "$tmp/in.fifo"
refuse logits-fifo 2 "$tmp/in.fifo: is a FIFO" -- logits "$tmp/in.fifo"
refuse logits-folder 2 "$tmp: is a folder" -- logits "$tmp"
refuse logits-device 2 "/dev/zero: is a device" -- logits /dev/zero
st "$tmp/f.safetensors" '{"tokens":{"dtype":"F32","shape":[1,3],"data_offsets":[0,12]}}' "$tmp/floats.bin"
refuse logits-float-tokens 2 "'tokens' must be an integer tensor (I32), got F32" -- logits "$tmp/f.safetensors"
st "$tmp/1d.safetensors" '{"tokens":{"dtype":"I32","shape":[3],"data_offsets":[0,12]}}' "$tmp/ids.bin"
refuse logits-1d 2 "'tokens' must be (B, T)" -- logits "$tmp/1d.safetensors"
st "$tmp/range.safetensors" '{"tokens":{"dtype":"I32","shape":[1,3],"data_offsets":[0,12]}}' "$tmp/big-ids.bin"
refuse logits-id-range 2 "token ids must lie in [0, 256)" -- logits "$tmp/range.safetensors"
cat "$tmp/ids.bin" "$tmp/floats.bin" > "$tmp/both.bin"
st "$tmp/pos.safetensors" '{"tokens":{"dtype":"I32","shape":[1,3],"data_offsets":[0,12]},"segment_pos":{"dtype":"F32","shape":[1,3],"data_offsets":[12,24]}}' "$tmp/both.bin"
refuse logits-float-pos 2 "'segment_pos' must be an integer tensor" -- logits "$tmp/pos.safetensors"
st "$tmp/pos2.safetensors" '{"tokens":{"dtype":"I32","shape":[1,3],"data_offsets":[0,12]},"segment_pos":{"dtype":"I32","shape":[3,1],"data_offsets":[12,24]}}' "$tmp/both.bin"
refuse logits-pos-shape 2 "segment_pos [3, 1] must have the shape of tokens [1, 3]" -- logits "$tmp/pos2.safetensors"
st "$tmp/extra.safetensors" '{"tokens":{"dtype":"I32","shape":[1,3],"data_offsets":[0,12]},"token":{"dtype":"I32","shape":[1,3],"data_offsets":[12,24]}}' "$tmp/both.bin"
refuse logits-extra 2 "unexpected tensor 'token'" -- logits "$tmp/extra.safetensors"
st "$tmp/none.safetensors" '{"ids":{"dtype":"I32","shape":[1,3],"data_offsets":[0,12]}}' "$tmp/ids.bin"
refuse logits-no-tokens 2 "unexpected tensor 'ids'" -- logits "$tmp/none.safetensors"
head -c 20 "$tmp/ok.safetensors" > "$tmp/cut.safetensors"
refuse logits-truncated 1 "$tmp/cut.safetensors: bad header length" -- logits "$tmp/cut.safetensors"
refuse logits-nan-weights 1 "NaN" -- logits "$tmp/ok.safetensors" "$tmp/nan"

finish malformed-model
