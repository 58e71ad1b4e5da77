#!/usr/bin/python3
"""Run report: PNG plots and an index.md summary table from rgemma run folders (`rgemma report` calls it).

    /usr/bin/python3 tools/plot/report.py --output DIR [--kind RUN=KIND] [--unigram-entropy RUN=NATS] RUN...

Each RUN is a folder written by pretrain, sft, reward, dpo, ppo or grpo: config.ini and metrics.jsonl (one
JSON object per line; lines with a `val_` key are evaluations, the others training steps or updates).
Writes into DIR:
  loss.png           training loss (lines) and validation loss (dots) vs tokens, one panel per kind
                     (pretraining panels also draw each run's unigram entropy, when given)
  lr.png             learning rate vs step
  throughput.png     tokens/s vs step
  accuracy.png       reward model / DPO: held-out accuracy per pair kind vs step
  rl.png             PPO / GRPO: score, reward, KL, entropy, response length (and success, with a verifiable
                     reward) vs update; held-out evaluations as dots
  index.md           one row per run: kind, steps, tokens, final loss and validation loss, tokens/s, time,
                     key metrics; then the pictures
Runs of the same kind share a panel, so several runs compare (1 rank vs 2, PPO vs GRPO). Fields a run does
not write are left out of its plots: every plot draws what is there, and a plot with nothing to draw is not
written. The kind comes from --kind (rgemma report passes the dataset kind it read) or from the metrics'
fields. Exit codes: 2 for a folder without metrics.jsonl (named), 1 when matplotlib is missing.
"""
import argparse
import json
import math
import os
import sys

KINDS = ["pretrain", "sft", "reward", "dpo", "ppo", "grpo"]
RL_KINDS = ("ppo", "grpo")
PAIR_KINDS = ("reward", "dpo")
# PPO/GRPO panels: (title, candidate field names in order of preference). The first name a run writes is
# drawn; names follow docs/rlhf.md (rgemma ppo / grpo), with common alternatives so older or newer runs plot.
RL_PANELS = [
    ("score", ["score", "score_mean", "scores", "rm_score", "score/mean"]),
    ("reward", ["reward", "reward_mean", "rewards", "reward/mean", "total_reward"]),
    ("KL to reference", ["kl", "kl_ref", "kl_mean", "objective/kl", "kl/ref"]),
    ("entropy", ["entropy", "entropy_mean", "policy/entropy"]),
    ("response length", ["response_length", "response_len", "length", "mean_length", "completion_length"]),
    ("success (verifiable reward)", ["success", "success_rate"]),
]
# Held-out counterparts drawn as dots on the same panel, when the run evaluates.
RL_EVAL = {"score": "val_score", "response length": "val_response_length", "success (verifiable reward)": "val_success"}


def fail(code, message):
    print("report: " + message, file=sys.stderr)
    sys.exit(code)


def finite(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


class Run:
    """One run folder: its step lines, its evaluation lines and its kind."""

    def __init__(self, path, kind=None, unigram_entropy=None):
        self.path = path
        self.name = os.path.basename(os.path.normpath(path)) or path
        metrics = os.path.join(path, "metrics.jsonl")
        if not os.path.isfile(metrics):
            fail(2, f"{path}: no metrics.jsonl (not a run folder of pretrain, sft, reward, dpo, ppo or grpo)")
        self.steps, self.evals = [], []
        with open(metrics, encoding="utf-8", errors="replace") as f:
            for line in f:
                try:
                    j = json.loads(line)
                except ValueError:
                    continue  # a torn last line of a killed run
                if not isinstance(j, dict) or not finite(j.get("step")):
                    continue
                (self.evals if any(k.startswith("val_") for k in j) else self.steps).append(j)
        self.kind = kind or self.guess_kind()
        self.unigram_entropy = unigram_entropy

    def fields(self):
        return set().union(*[set(j) for j in self.steps]) if self.steps else set()

    def guess_kind(self):
        f = self.fields()
        low = self.name.lower()
        if any(k.startswith("rewards/") for k in f):
            return "dpo"
        if "accuracy" in f and "reward_mean" in f:
            return "reward"
        for kind in ("grpo", "ppo"):
            if kind in low:
                return kind
        if {"value_loss", "explained_variance"} & f:
            return "ppo"
        if any("group" in k or "zero_std" in k for k in f):
            return "grpo"
        if any(p[1][0] in f for p in RL_PANELS):
            return "ppo"
        return "sft" if "sft" in low else "pretrain"

    def series(self, key, lines=None, x="step"):
        """(xs, ys) of the lines with finite values of both x and key."""
        pts = [(j[x], j[key]) for j in (self.steps if lines is None else lines) if finite(j.get(x)) and finite(j.get(key))]
        return [p[0] for p in pts], [p[1] for p in pts]

    def last(self, key, lines=None):
        for j in reversed(self.steps if lines is None else lines):
            if finite(j.get(key)):
                return j[key]
        return None

    def first(self, key):
        for j in self.steps:
            if finite(j.get(key)):
                return j[key]
        return None

    def train_seconds(self):
        """Seconds spent in training steps: PPO/GRPO's time/update_s summed, else each line's tokens over its
        tokens/s (evaluations and start-up are not counted; approximate where a line's rate covers several
        steps)."""
        updates = self.series("time/update_s")[1]
        if updates:
            return sum(updates)
        total, prev = 0.0, 0
        for j in self.steps:
            tokens, rate = j.get("tokens"), j.get("tokens_per_s")
            if finite(tokens) and finite(rate) and rate > 0 and tokens >= prev:
                total += (tokens - prev) / rate
            if finite(tokens):
                prev = tokens
        return total if total > 0 else None

    def rl_field(self, candidates):
        f = self.fields()
        return next((c for c in candidates if c in f), None)


# ---- formatting --------------------------------------------------------------------------------------------
def fmt(v, digits=4):
    if v is None:
        return "-"
    if isinstance(v, int) or (isinstance(v, float) and v.is_integer() and abs(v) >= 1000):
        return f"{int(v):,}"
    return f"{v:.{digits}g}"


def fmt_fixed(v, decimals=4):
    return "-" if v is None else f"{v:.{decimals}f}"


def fmt_int(v):
    return "-" if v is None else f"{v:,.0f}"


def fmt_count(v):
    if v is None:
        return "-"
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(v) >= scale:
            return f"{v / scale:.3g}{unit}"
    return f"{v:.3g}"


def fmt_duration(s):
    if s is None:
        return "-"
    s = int(round(s))
    return f"{s}s" if s < 60 else f"{s // 60}m{s % 60:02d}s" if s < 3600 else f"{s // 3600}h{s % 3600 // 60:02d}m"


def key_metrics(run):
    """The few numbers that say whether a run did its job, as 'name value' strings."""
    out = []
    if run.kind in ("pretrain", "sft"):
        v = run.last("val_ppl", run.evals)
        if v is not None:
            out.append(f"val ppl {fmt(v)}")
        if run.unigram_entropy is not None:
            out.append(f"unigram entropy {fmt(run.unigram_entropy)}")
    elif run.kind in PAIR_KINDS:
        acc = "val_accuracy" if run.kind == "reward" else "val_rewards/accuracy"
        v = run.last(acc, run.evals)
        if v is not None:
            out.append(f"val accuracy {fmt(v, 3)}")
        for k in sorted({k for j in run.evals for k in j if k.startswith("val_accuracy/")}):
            v = run.last(k, run.evals)
            if v is not None:
                out.append(f"{k[len('val_accuracy/'):]} {fmt(v, 3)}")
        if run.kind == "dpo":
            v = run.last("val_rewards/margin", run.evals)
            if v is not None:
                out.append(f"val margin {fmt(v, 3)}")
    else:
        for title, names in RL_PANELS:
            key = run.rl_field(names)
            if key is None:
                continue
            a, b = window_mean(run, key, first=True), window_mean(run, key, first=False)
            rising = title in ("score", "reward") or title.startswith("success")
            out.append(f"{key} {fmt(a, 3)} -> {fmt(b, 3)}" if rising else f"{key} {fmt(b, 3)}")
        for key in ("val_score", "val_success"):
            v = run.last(key, run.evals)
            if v is not None:
                out.append(f"{key} {fmt(v, 3)}")
    return ", ".join(out) if out else "-"


def window_mean(run, key, first):
    """Mean of key over the first (or last) tenth of the updates, at least one: noisy RL curves compare better."""
    _, ys = run.series(key)
    if not ys:
        return None
    n = max(1, len(ys) // 10)
    part = ys[:n] if first else ys[-n:]
    return sum(part) / len(part)


def write_index(runs, out, pictures):
    rows = ["| run | kind | steps | tokens | final loss | final val loss | tokens/s | time | key metrics |",
            "|---|---|---|---|---|---|---|---|---|"]
    for r in runs:
        steps = r.last("step")
        rows.append("| " + " | ".join([
            r.name, r.kind, fmt_int(steps), fmt_int(r.last("tokens")),
            fmt_fixed(r.last("loss")), fmt_fixed(r.last("val_loss", r.evals)), fmt_int(r.last("tokens_per_s")),
            fmt_duration(r.train_seconds()), key_metrics(r)]) + " |")
    text = ["# Run report", "", "Folders: " + ", ".join(f"`{r.path}`" for r in runs), ""] + rows + [
        "", "final loss / tokens/s: the last training line's value (4 decimals / rounded); final val loss: the last evaluation's; "
        "time: training steps only, from tokens / tokens/s or PPO/GRPO's time/update_s (evaluation and start-up "
        "excluded); PPO/GRPO `a -> b`: means over the first and the last tenth of the updates.", ""]
    for name, caption in pictures:
        text += [f"## {caption}", "", f"![{caption}]({name})", ""]
    with open(os.path.join(out, "index.md"), "w") as f:
        f.write("\n".join(text))


# ---- plots -------------------------------------------------------------------------------------------------
def smoothed(ys):
    """Centred moving average over ~1/15 of the points (noisy per-step curves read better): None when there are
    too few points to need it."""
    n = len(ys)
    half = n // 30
    if half < 1:
        return None
    return [sum(ys[max(0, i - half):i + half + 1]) / len(ys[max(0, i - half):i + half + 1]) for i in range(n)]


def draw_line(ax, xs, ys, color, label):
    """The curve, and when it is long, its moving average on top of the raw values drawn faint."""
    smooth = smoothed(ys)
    if smooth is None:
        ax.plot(xs, ys, color=color, lw=1, label=label)
    else:
        ax.plot(xs, ys, color=color, lw=0.7, alpha=0.3)
        ax.plot(xs, smooth, color=color, lw=1.5, label=f"{label} (moving average)")


def panels(plt, n, width=5.0, height=3.4):
    cols = min(n, 3)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False)
    flat = [a for row in axes for a in row]
    for a in flat[n:]:
        a.set_visible(False)
    return fig, flat[:n]


def save(fig, out, name, pictures, caption):
    fig.tight_layout()
    fig.savefig(os.path.join(out, name), dpi=90)
    pictures.append((name, caption))


def by_kind(runs, want=lambda r: True):
    groups = {}
    for r in runs:
        if want(r):
            groups.setdefault(r.kind, []).append(r)
    return [(k, groups[k]) for k in KINDS if k in groups] + [(k, v) for k, v in groups.items() if k not in KINDS]


def plot_loss(plt, runs, out, pictures):
    from matplotlib.ticker import EngFormatter
    groups = by_kind(runs, lambda r: r.series("loss", x="tokens")[0])
    if not groups:
        return
    fig, axes = panels(plt, len(groups))
    for ax, (kind, rs) in zip(axes, groups):
        for i, r in enumerate(rs):
            color = f"C{i}"
            draw_line(ax, *r.series("loss", x="tokens"), color, f"{r.name} train")
            xs, ys = r.series("val_loss", r.evals, x="tokens")
            if not xs:  # pair trainers' eval lines carry the step only: place them at that step's tokens
                tokens_at = dict(zip(*r.series("tokens")))
                pts = [(tokens_at[s], v) for s, v in zip(*r.series("val_loss", r.evals)) if s in tokens_at]
                xs, ys = [p[0] for p in pts], [p[1] for p in pts]
            if xs:
                ax.plot(xs, ys, "o--", color=color, ms=4, label=f"{r.name} validation")
            if r.unigram_entropy is not None:
                ax.axhline(r.unigram_entropy, color=color, ls=":", lw=1.2,
                           label=f"{r.name} unigram entropy {r.unigram_entropy:.2f}")
        ax.set_title(f"{kind}: loss")
        ax.set_xlabel("tokens")
        ax.xaxis.set_major_formatter(EngFormatter())  # 300k, not 300000 (long labels run together)
        ax.set_ylabel("loss (nats)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    save(fig, out, "loss.png", pictures, "Loss and validation loss vs tokens")


def plot_per_step(plt, runs, out, pictures, key, name, caption, ylabel, log=False, fallback=None):
    """One panel per kind of `key` vs step (`fallback` for runs without key: PPO/GRPO's rollout tokens/s)."""
    field = lambda r: key if r.series(key)[0] else fallback if fallback and r.series(fallback)[0] else None
    groups = by_kind(runs, field)
    if not groups:
        return
    fig, axes = panels(plt, len(groups), height=3.0)
    for ax, (kind, rs) in zip(axes, groups):
        for i, r in enumerate(rs):
            draw_line(ax, *r.series(field(r)), f"C{i}", r.name if field(r) == key else f"{r.name}: {field(r)}")
        ax.set_title(f"{kind}: {ylabel}")
        ax.set_xlabel("step")
        ax.set_ylabel(ylabel)
        if log:
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    save(fig, out, name, pictures, caption)


def plot_accuracy(plt, runs, out, pictures):
    rs = [r for r in runs if r.kind in PAIR_KINDS and r.evals]
    if not rs:
        return
    fig, axes = panels(plt, len(rs))
    for ax, r in zip(axes, rs):
        overall = "val_accuracy" if r.kind == "reward" else "val_rewards/accuracy"
        keys = [overall] + sorted({k for j in r.evals for k in j if k.startswith("val_accuracy/")})
        for i, k in enumerate(keys):
            xs, ys = r.series(k, r.evals)
            if xs:
                label = "all held-out pairs" if k == overall else k[len("val_accuracy/"):]
                ax.plot(xs, ys, "o-", color=f"C{i}", lw=2 if k == overall else 1, ms=4, label=label)
        ax.axhline(0.5, color="gray", ls=":", lw=1, label="chance")
        ax.set_ylim(0, 1.02)
        ax.set_title(f"{r.name} ({r.kind}): held-out accuracy per kind")
        ax.set_xlabel("step")
        ax.set_ylabel("share with chosen > rejected")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    save(fig, out, "accuracy.png", pictures, "Reward model and DPO: held-out accuracy per pair kind")


def plot_rl(plt, runs, out, pictures):
    rs = [r for r in runs if r.kind in RL_KINDS]
    present = [(t, names) for t, names in RL_PANELS if any(r.rl_field(names) for r in rs)]
    if not present:
        return
    fig, axes = panels(plt, len(present), height=3.2)
    for ax, (title, names) in zip(axes, present):
        for i, r in enumerate(rs):
            key = r.rl_field(names)
            if key:
                draw_line(ax, *r.series(key), f"C{i}", f"{r.name} ({r.kind}): {key}")
            xs, ys = r.series(RL_EVAL.get(title, ""), r.evals)
            if xs:
                ax.plot(xs, ys, "o--", color=f"C{i}", ms=4, label=f"{r.name}: held-out {RL_EVAL[title]}")
        ax.set_title(title)
        ax.set_xlabel("update")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    save(fig, out, "rl.png", pictures, "PPO / GRPO: score, reward, KL, entropy and response length vs update")


def parse_pairs(items, what, convert=str):
    out = {}
    for item in items or []:
        run, sep, value = item.rpartition("=")
        if not sep:
            fail(2, f"--{what} expects RUN=VALUE, got '{item}'")
        out[os.path.normpath(run)] = convert(value)
    return out


def main():
    ap = argparse.ArgumentParser(description="Plots and index.md from rgemma run folders.")
    ap.add_argument("runs", nargs="+", metavar="RUN")
    ap.add_argument("--output", required=True)
    ap.add_argument("--kind", action="append", help="RUN=KIND (pretrain, sft, reward, dpo, ppo, grpo)")
    ap.add_argument("--unigram-entropy", action="append", help="RUN=NATS, drawn on the run's loss panel")
    a = ap.parse_args()
    kinds = parse_pairs(a.kind, "kind")
    entropies = parse_pairs(a.unigram_entropy, "unigram-entropy", float)
    runs = [Run(p, kinds.get(os.path.normpath(p)), entropies.get(os.path.normpath(p))) for p in a.runs]
    names = [r.name for r in runs]
    for r in runs:  # runs/a/pretrain and runs/b/pretrain: named a/pretrain and b/pretrain
        if names.count(r.name) > 1:
            r.name = "/".join(os.path.normpath(r.path).split(os.sep)[-2:])
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:
        fail(1, f"matplotlib is missing for {sys.executable} ({e}); on Debian: apt-get install python3-matplotlib")
    os.makedirs(a.output, exist_ok=True)
    pictures = []
    plot_loss(plt, runs, a.output, pictures)
    plot_per_step(plt, runs, a.output, pictures, "lr", "lr.png", "Learning rate vs step", "learning rate")
    plot_per_step(plt, runs, a.output, pictures, "tokens_per_s", "throughput.png", "Throughput vs step", "tokens/s",
                  fallback="rollout_tokens_per_s")
    plot_accuracy(plt, runs, a.output, pictures)
    plot_rl(plt, runs, a.output, pictures)
    plt.close("all")
    write_index(runs, a.output, pictures)
    for r in runs:
        print(f"{r.name} ({r.kind}): {fmt(r.last('step'))} steps, {fmt_count(r.last('tokens'))} tokens, "
              f"loss {fmt(r.last('loss'))}, val loss {fmt(r.last('val_loss', r.evals))}; {key_metrics(r)}")
        val = r.last("val_loss", r.evals)
        if r.unigram_entropy is not None and val is not None:
            print(f"{r.name}: validation loss {val:.3f} nats is {r.unigram_entropy - val:.3f} below the unigram entropy "
                  f"{r.unigram_entropy:.3f} of the training tokens (the best a model that ignores context can do on them)")
    print(f"wrote {os.path.join(a.output, 'index.md')} and " + ", ".join(p for p, _ in pictures))


if __name__ == "__main__":
    main()
