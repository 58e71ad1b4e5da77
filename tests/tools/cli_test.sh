#!/usr/bin/env bash
# The rgemma command as a user meets it: counts from `info`, exit code 2 with one clear line for an unknown
# command, an unknown option and a bad config key. Usage: cli_test.sh RGEMMA SOURCE_DIR
. "$(dirname "${BASH_SOURCE[0]}")/../tools/check_lib.sh"
check help 0 "info" -- "$rgemma" --help
check info-2b 0 "parameters: 2,682,862,080" -- "$rgemma" info --config "$src/configs/model/recurrentgemma-2b.ini"
check info-2b-embedding 0 "embedding: 655,360,000" -- "$rgemma" info --config "$src/configs/model/recurrentgemma-2b.ini"
check info-9b 0 "parameters: 8,579,977,216" -- "$rgemma" info --config "$src/configs/model/recurrentgemma-9b.ini"
check info-9b-embedding 0 "embedding: 1,048,576,000" -- "$rgemma" info --config "$src/configs/model/recurrentgemma-9b.ini"
check info-gemma 0 "parameters: 2,506,172,416" -- "$rgemma" info --config "$src/configs/model/gemma-2b.ini"
check info-override 0 "depth 12" -- "$rgemma" info --config "$src/configs/model/tiny.ini" --model.depth=12
check unknown-command 2 "unknown command 'trian'" -- "$rgemma" trian
check unknown-option 2 "unknown option '--model.widht'" -- "$rgemma" info --model.widht=3
printf '[model]\nwidth = 64\ndepht = 3\n' > "$tmp/bad.ini"
check bad-key 2 "$tmp/bad.ini:3: unknown key 'model.depht'" -- "$rgemma" info --config "$tmp/bad.ini"
printf '[model]\nwidth = wide\n' > "$tmp/badval.ini"
check bad-value 2 "$tmp/badval.ini:2: model.width: expected an integer in [1, 65536], got 'wide'" -- "$rgemma" info --config "$tmp/badval.ini"
check missing-file 2 "nope.ini: cannot open" -- "$rgemma" info --config "$tmp/nope.ini"
lines=$("$rgemma" info --model.widht=3 2>&1 | wc -l)
[ "$lines" = 1 ] && ok one-line-error || fail "one-line-error: $lines lines"
finish "rgemma CLI"
