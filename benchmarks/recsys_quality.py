"""Recommendation quality benchmark: the standard leave-one-out protocol on Amazon Beauty.

    .venv/bin/python benchmarks/recsys_quality.py [--data FILE] [--repeats N] [--policy longtail]

Evaluates our default model and the popularity, item-kNN and implicit-ALS baselines under both
protocols (see docs/recsys.md): ``refit`` (trained on all but the last item, settings chosen on
the held-out validation item; our model does both in one fit, by exact leave-one-out) and
``strict`` (trained and tuned on all but the last two items only). The last item is ranked
against all items (the user's own items excluded), with the traffic policy off and on. Prints a
table per run; the LAST line is one JSON object with the figures (medians over the repeats),
keyed model -> protocol -> policy, with process CPU time next to wall time and the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

from rich.console import Console

from juxing.recsys.commands import report_table
from juxing.recsys.evaluation import EvalReport
from juxing.recsys.io import attributes_path_for, read_seq, with_item_attributes
from juxing.recsys.pipeline import BASELINES, DEFAULT_MODEL, evaluate_protocol

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "amazon-beauty" / "Beauty.txt"
TARGETS = {"HR@10": 0.0975, "NDCG@10": 0.0558}
PUBLISHED_BEST = {"HR@10": 0.0928, "NDCG@10": 0.0531}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--policy", default="longtail")
    parser.add_argument(
        "--models", default=",".join((DEFAULT_MODEL, *BASELINES)), help="comma-separated"
    )
    parser.add_argument(
        "--protocols", default="refit,strict", help="comma-separated: refit and/or strict"
    )
    parser.add_argument(
        "--no-attributes", action="store_true", help="ignore <name>_item2attributes.json"
    )
    args = parser.parse_args()
    if not args.data.is_file():
        print(f"data file {args.data} is absent", file=sys.stderr)
        return 2
    data, bad = read_seq(args.data)
    attributes = attributes_path_for(args.data)
    use_attributes = attributes.is_file() and not args.no_attributes
    if use_attributes:
        data = with_item_attributes(data, attributes)
    ks = [10, 20]
    protocols = [p.strip() for p in args.protocols.split(",") if p.strip()]
    if not protocols or not set(protocols) <= {"refit", "strict"}:
        parser.error("--protocols takes refit and/or strict")
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    runs: list[list[EvalReport]] = []
    console = Console(width=200)
    loads = [os.getloadavg()[0]]
    start, cpu = time.perf_counter(), time.process_time()
    for i in range(args.repeats):
        protocol = "both" if set(protocols) == {"refit", "strict"} else protocols[0]
        reports = evaluate_protocol(data, ks, models=models, policy=args.policy, protocol=protocol)
        loads.append(os.getloadavg()[0])
        console.print(f"run {i + 1}/{args.repeats}")
        console.print(report_table(reports, ks))
        runs.append(reports)
    figures = summarise(runs, args.policy)
    figures |= {
        "dataset": args.data.name,
        "users": data.n_users,
        "items": data.n_items,
        "malformed_lines": len(bad),
        "repeats": args.repeats,
        "item_attributes": use_attributes,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_avg_1m": round(os.getloadavg()[0], 2),
            "load_avg_1m_median": round(statistics.median(loads), 2),
        },
        "bench_wall_s": round(time.perf_counter() - start, 1),
        "bench_cpu_s": round(time.process_time() - cpu, 1),
        "targets": TARGETS,
        "published_best": PUBLISHED_BEST,
    }
    figures["targets_met"] = {
        protocol: {key: ours["off"][key] >= value for key, value in TARGETS.items()}
        for protocol, ours in figures["models"].get(DEFAULT_MODEL, {}).items()
    }
    print(json.dumps(figures, sort_keys=True))
    return 0


def summarise(runs: list[list[EvalReport]], policy: str | None) -> dict:
    """Median of every figure over the runs, per model and policy, plus the policy ratios."""
    keys = ["HR@10", "NDCG@10", "HR@20", "NDCG@20", "coverage", "APLT", "Gini"]
    models: dict[str, dict[str, dict[str, dict[str, float]]]] = {}
    for report in runs[0]:
        key_of = (report.model, report.protocol, report.policy)
        same = [r for run in runs for r in run if (r.model, r.protocol, r.policy) == key_of]
        entry = {k: round(statistics.median(r.metrics[k] for r in same), 4) for k in keys}
        entry["train_s"] = round(statistics.median(r.train_s for r in same), 1)
        entry["train_cpu_s"] = round(statistics.median(r.train_cpu_s for r in same), 1)
        models.setdefault(report.model, {}).setdefault(report.protocol, {})[report.policy] = entry
    out: dict = {"models": models}
    if policy:
        ratios: dict[str, dict] = {}
        for name, by_protocol in models.items():
            for protocol, by_policy in by_protocol.items():
                off, on = by_policy["off"], by_policy[policy]
                ratios.setdefault(name, {})[protocol] = {
                    "ndcg10_on_over_off": round(on["NDCG@10"] / max(off["NDCG@10"], 1e-12), 4),
                    "aplt_on_over_off": round(on["APLT"] / max(off["APLT"], 1e-12), 4),
                    "gini_on_over_off": round(on["Gini"] / max(off["Gini"], 1e-12), 4),
                    "meets_policy_targets": bool(
                        on["NDCG@10"] >= 0.97 * off["NDCG@10"]
                        and on["APLT"] >= 2 * off["APLT"]
                        and on["Gini"] <= 0.75 * off["Gini"]
                    ),
                }
        out["policy"] = {"name": policy, "ratios": ratios}
    return out


if __name__ == "__main__":
    sys.exit(main())
