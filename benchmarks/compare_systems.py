"""Paired differences between two systems of one `jobs/evaluate.py` run: for every metric, the mean over
files of A - B on the same noisy file, with the 95% t-interval the evaluation summary uses. The summary
gives each system's gain over the noisy input; this answers "is A better than B" on the same files
(e.g. the starter against `--baseline rnnoise`), which overlapping per-system intervals cannot.

python benchmarks/compare_systems.py EVAL_OUTPUT/results.parquet A B [--metrics pesq_wb,stoi,...]
"""

from __future__ import annotations

import argparse

import pandas as pd

from ansray.evaluation.summary import estimate

DEFAULT_METRICS = "pesq_wb,stoi,si_sdr,dnsmos_ovrl,dnsmos_sig,dnsmos_bak"


def paired_differences(results: pd.DataFrame, system_a: str, system_b: str, metric: str) -> pd.Series:
    """A - B per file, over the files both systems scored (joined by key; rows with an error left out, as
    the evaluation summary leaves them)."""
    scored = results[results["error"].isna()]
    scores = {name: scored[scored["system"] == name].set_index("key")[metric] for name in (system_a, system_b)}
    for name, column in scores.items():
        if column.empty:
            raise SystemExit(f"no rows for system {name!r}; systems here: {sorted(results['system'].unique())}")
    return (scores[system_a] - scores[system_b]).dropna()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", help="results.parquet of one jobs/evaluate.py run")
    parser.add_argument("system_a")
    parser.add_argument("system_b")
    parser.add_argument("--metrics", default=DEFAULT_METRICS)
    args = parser.parse_args()
    results = pd.read_parquet(args.results)
    print(f"{args.system_a} - {args.system_b}, paired by file: mean [95% CI] (files)")
    for metric in args.metrics.split(","):
        difference = estimate(paired_differences(results, args.system_a, args.system_b, metric).to_numpy())
        print(f"{metric:12s} {difference.mean:+.3f} [{difference.ci_low:+.3f}, {difference.ci_high:+.3f}]"
              f" ({difference.count})")


if __name__ == "__main__":
    main()
