#!/usr/bin/python3
"""The paper's Figure 1 from `rgemma bench sample --vs` and `rgemma bench prefill --vs` output.

Reads JSON lines (one object per line; other lines are ignored), draws
  (a) sampling throughput against generated tokens: solid, the rate with that many tokens in the cache
      (at_tokens_per_s, the last 128 steps before the point); dashed, the average from the first
      generated token (tokens_per_s, what sampling that many tokens costs),
  (b) sampling-state / KV-cache bytes against generated tokens,
  (c) prompt-processing throughput against prompt length,
one line per model, to a PNG, and prints the table for docs/benchmarks.md.
Run with Debian's matplotlib: /usr/bin/python3 tools/plot/figure1.py OUT.png RESULTS.jsonl...
"""
import json
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def read_rows(paths):
    rows = []
    for path in paths:
        if not os.path.exists(path):
            sys.stderr.write(f"figure1.py: {path}: not found (that part not run yet), skipped\n")
            continue
        with open(path) as f:
            for line in f:
                line = line.strip()
                if line.startswith("{"):
                    rows.append(json.loads(line))
    return rows


def by_model(rows, name):
    out = {}
    for r in rows:
        if r.get("name") == name:
            out.setdefault(r["model"], []).append(r)
    for model in out:
        out[model].sort(key=lambda r: r["seq"])
    return out


def setup(rows_by_model):
    first = next(iter(rows_by_model.values()), None)
    return f"batch {first[0]['batch']}" if first else "not run"


def table(sample, prefill):
    lines = ["| model | generated tokens | tokens/s at that length | tokens/s from the first token | state bytes |",
             "|---|---|---|---|---|"]
    for model, rows in sample.items():
        for r in rows:
            at = f"{r['at_tokens_per_s']:,.1f}" if "at_tokens_per_s" in r else "-"
            lines.append(f"| {model} | {r['seq']:,} | {at} | {r['tokens_per_s']:,.1f} | {r['state_bytes']:,} |")
    lines += ["", "| model | prompt tokens | prefill tokens/s | state bytes after it |", "|---|---|---|---|"]
    for model, rows in prefill.items():
        for r in rows:
            lines.append(f"| {model} | {r['seq']:,} | {r['tokens_per_s']:,.1f} | {r['state_bytes']:,} |")
    return "\n".join(lines)


def main(argv):
    if len(argv) < 3:
        sys.stderr.write("usage: figure1.py OUT.png RESULTS.jsonl...\n")
        return 2
    rows = read_rows(argv[2:])
    sample, prefill = by_model(rows, "sample"), by_model(rows, "prefill")
    if not sample and not prefill:
        sys.stderr.write("figure1.py: no 'sample' or 'prefill' rows in " + ", ".join(argv[2:]) + "\n")
        return 1
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    for model, rs in sample.items():
        xs = [r["seq"] for r in rs]
        if all("at_tokens_per_s" in r for r in rs):
            line, = axes[0].plot(xs, [r["at_tokens_per_s"] for r in rs], marker="o", label=f"{model} at length")
            axes[0].plot(xs, [r["tokens_per_s"] for r in rs], linestyle="--", marker=".", color=line.get_color(),
                         label=f"{model} from the first token")
        else:
            axes[0].plot(xs, [r["tokens_per_s"] for r in rs], marker="o", label=model)
        axes[1].plot([r["seq"] for r in rs], [r["state_bytes"] / 2**20 for r in rs], marker="o", label=model)
    for model, rs in prefill.items():
        axes[2].plot([r["seq"] for r in rs], [r["tokens_per_s"] for r in rs], marker="o", label=model)
    titles = [(f"(a) sampling throughput, {setup(sample)}", "generated tokens", "tokens/s"),
              (f"(b) sampling state / KV cache, {setup(sample)}", "generated tokens", "MiB"),
              (f"(c) prompt processing, {setup(prefill)}", "prompt tokens", "tokens/s")]
    any_row = (next(iter(sample.values()), None) or next(iter(prefill.values())))[0]
    for ax, (title, xlabel, ylabel) in zip(axes, titles):
        ax.set_title(title)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_xscale("log", base=2)
        ax.set_ylim(bottom=0)
        ax.grid(True, alpha=0.3)
        ax.legend()
    fig.suptitle("RecurrentGemma vs a Gemma transformer of matched size "
                 f"({any_row['dtype']}, {any_row['threads']} threads)")
    fig.tight_layout()
    fig.savefig(argv[1], dpi=110)
    print(table(sample, prefill))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
