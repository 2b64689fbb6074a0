"""Turns raw benchmark measurements into Markdown tables (used by the scripts in bench/).

    python3 summarize.py hyperfine --baseline NAME RUN1.json RUN2.json ...
        One table from several `hyperfine --export-json` files of the same commands: per command
        the median of the per-file medians, each file's median, the interquartile range and the
        min-max over all runs pooled, and the ratio of its median of medians to the baseline's.

    python3 summarize.py samples --unit UNIT --baseline NAME LABEL=FILE ...
        One table from files of numbers (one per line, e.g. peak RSS in KiB): per label the
        count, median, interquartile range, min-max, and the ratio of its median to the
        baseline's. With --baseline given several times, the rows form groups: each row is
        compared with the nearest baseline listed at or above it (rows above the first
        baseline, with the first).

Quantiles use linear interpolation between order statistics (numpy's default "linear").
"""

import argparse
import json
import statistics
import sys


def quantile(values, q):
    data = sorted(values)
    if not data:
        raise ValueError("no values")
    pos = (len(data) - 1) * q
    low = int(pos)
    high = min(low + 1, len(data) - 1)
    return data[low] + (data[high] - data[low]) * (pos - low)


def fmt(value, digits):
    return f"{value:.{digits}f}"


def ratio(value, base):
    return f"{value / base:.2f}x" if base else "n/a"


def hyperfine_table(args):
    runs = []  # per file: {command: result}
    order = []
    for path in args.files:
        with open(path) as handle:
            results = json.load(handle)["results"]
        runs.append({result["command"]: result for result in results})
        for result in results:
            if result["command"] not in order:
                order.append(result["command"])
    rows = {}
    for command in order:
        medians = [run[command]["median"] * 1000 for run in runs if command in run]
        pooled = [t * 1000 for run in runs if command in run for t in run[command]["times"]]
        rows[command] = (statistics.median(medians), medians, pooled)
    if args.baseline not in rows:
        sys.exit(f"baseline {args.baseline!r} not among {order}")
    base = rows[args.baseline][0]
    out = [
        "| tool | median of medians (ms) | per-repetition medians (ms) "
        "| IQR, all runs (ms) | min-max, all runs (ms) | runs | vs initbox |",
        "| --- | ---: | --- | --- | --- | ---: | ---: |",
    ]
    for command in order:
        median, medians, pooled = rows[command]
        out.append(
            f"| {command} | {fmt(median, 2)} | {', '.join(fmt(m, 2) for m in medians)} "
            f"| {fmt(quantile(pooled, 0.25), 2)}-{fmt(quantile(pooled, 0.75), 2)} "
            f"| {fmt(min(pooled), 2)}-{fmt(max(pooled), 2)} | {len(pooled)} "
            f"| {ratio(median, base)} |"
        )
    print("\n".join(out))


def samples_table(args):
    rows = []
    for spec in args.series:
        label, _, path = spec.partition("=")
        with open(path) as handle:
            values = [float(line) for line in handle if line.strip()]
        if not values:
            sys.exit(f"{path}: no values")
        rows.append((label, values))
    labels = [label for label, _ in rows]
    for baseline in args.baseline:
        if baseline not in labels:
            sys.exit(f"baseline {baseline!r} not among {labels}")
    medians = {label: statistics.median(values) for label, values in rows}
    if len(args.baseline) == 1:
        bases = [medians[args.baseline[0]]] * len(rows)
    else:
        first = min(labels.index(baseline) for baseline in args.baseline)
        current = medians[labels[first]]
        bases = []
        for label in labels:
            if label in args.baseline:
                current = medians[label]
            bases.append(current)
    unit = args.unit
    out = [
        f"| tool | median ({unit}) | IQR ({unit}) | min-max ({unit}) | n | vs initbox |",
        "| --- | ---: | --- | --- | ---: | ---: |",
    ]
    digits = args.digits
    for (label, values), base in zip(rows, bases):
        median = statistics.median(values)
        out.append(
            f"| {label} | {fmt(median, digits)} "
            f"| {fmt(quantile(values, 0.25), digits)}-{fmt(quantile(values, 0.75), digits)} "
            f"| {fmt(min(values), digits)}-{fmt(max(values), digits)} | {len(values)} "
            f"| {ratio(median, base)} |"
        )
    print("\n".join(out))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    hyper = sub.add_parser("hyperfine")
    hyper.add_argument("--baseline", required=True)
    hyper.add_argument("files", nargs="+")
    hyper.set_defaults(run=hyperfine_table)
    samples = sub.add_parser("samples")
    samples.add_argument("--baseline", required=True, action="append")
    samples.add_argument("--unit", required=True)
    samples.add_argument("--digits", type=int, default=0)
    samples.add_argument("series", nargs="+", metavar="LABEL=FILE")
    samples.set_defaults(run=samples_table)
    args = parser.parse_args()
    args.run(args)


if __name__ == "__main__":
    main()
