"""``nasplug rank``: score a whole search space without training, list the best cells, and (with
``--benchmark``) measure the ranking against benchmark ground truth in a report: NAS-Bench-201 (the
whole space is scored and matched to the file), or NAS-Bench-101, NAS-Bench-301 and any table of
cells (the file's own cells are scored)."""

from __future__ import annotations

import math

from nasplug.checks import int_arg, seed_arg

#: The first one sorts: ntk_lambda_min, the best single fast scorer on the tuning halves of NB201's
#: CIFAR-10 (docs/ntk_ranking.md); then the recommended ensemble's other members and the topology.
DEFAULT_SCORERS = [
    "ntk_lambda_min", "live_param_cost", "effective_depth", "nngp_inverse_condition", "sum_depth_cubed",
    "nngp_lambda_min", "effective_width", "num_paths",
]
#: ``--aggregate recommended``: the ensemble chosen by benchmarks/ntk_ensemble.py (docs/ntk_ranking.md).
RECOMMENDED_AGGREGATE = "ntk_lambda_min:1,effective_depth:1,nngp_inverse_condition:1"
DEFAULT_FILTERS = ["dag_box"]


def add_parser(sub) -> None:
    p = sub.add_parser(
        "rank",
        help="score every cell of a search space and list the best (optionally vs a benchmark)",
        description="Scores a whole space with registered scorers (see `nasplug scorers`), "
        "sorts by the first one and applies the filters. No data needed. With --benchmark, also "
        "compares the scores with the benchmark's accuracies (Kendall tau, Spearman rho, top-k, "
        "pre-filter curves, filter and search statistics) and writes a report into --out. A "
        "NAS-Bench-201 file is matched to --space; any other benchmark file (NAS-Bench-101, "
        "NAS-Bench-301, a table of cells) has its own cells scored, and filters are fitted on them.",
    )
    p.add_argument("--space", default="nb201", help="search space (default nb201; see `nasplug spaces`)")
    p.add_argument("--scorers", default=",".join(DEFAULT_SCORERS),
                   help="comma-separated scorers; the first one sorts (default %(default)s)")
    p.add_argument("--filters", default=",".join(DEFAULT_FILTERS),
                   help="comma-separated filters, '' for none (default %(default)s)")
    p.add_argument("--aggregate", default=None, metavar="NAME:W,...",
                   help="add a column 'rank_aggregate' and sort by it: the weighted mean of the scorers' "
                   "normalized ranks (a negative weight reverses a scorer), e.g. effective_depth:1,"
                   "num_paths:0.5 (default: none). Recommended: 'recommended' = " + RECOMMENDED_AGGREGATE +
                   " (held-out Spearman rho 0.893/0.869/0.836 on NB201 CIFAR-10/100/ImageNet16-120, "
                   "chosen on a random half with CIFAR-10 only; docs/ntk_ranking.md)")
    p.add_argument("--sample", type=int_arg(1), default=None,
                   help="score this many uniformly drawn cells, >= 1, instead of all (needed for spaces "
                   "over 2,000,000 cells; default: all)")
    p.add_argument("--seed", type=seed_arg(), default=0, help="seed of --sample (default %(default)s)")
    p.add_argument("--top", type=int_arg(0), default=10, help="how many cells to print, >= 0 "
                   "(default %(default)s)")
    p.add_argument("--out", help="folder for scores.csv (and, with --benchmark, the report; default: "
                   "print only)")
    p.add_argument("--benchmark", metavar="FILE",
                   help="ground truth: NAS-Bench-201 (official .pth, compact table, CSV export), "
                   "NAS-Bench-101 (.tfrecord, NASLib .pkl), NAS-Bench-301 (NASLib .pickle), NASLib "
                   "zero-cost .json, or a table of cells (.csv/.json/.parquet); see `nasplug bench info` "
                   "(default: none, no report)")
    p.add_argument("--dataset", default=None,
                   help="benchmark dataset(s), comma-separated: cifar10, cifar10-valid, cifar100, "
                   "ImageNet16-120 (or c10, c100, in16; default: cifar10 for NAS-Bench-201, else every "
                   "dataset of the file; names the dataset of a table that does not)")
    p.add_argument("--metric", default=None,
                   help="ground-truth metric (default: test_accuracy when the file has it, else "
                   "valid_accuracy)")
    p.add_argument("--search-seeds", type=int_arg(1), default=1000,
                   help="seeds of the table-lookup searches in the report, >= 1 (default %(default)s)")
    p.add_argument("--no-html", action="store_true", help="write only the Markdown report")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    p.set_defaults(func=run)


def _names(text: str) -> list[str]:
    return [n.strip() for n in text.split(",") if n.strip()]


def _weights(text: str) -> dict[str, float]:
    from nasplug.errors import NasplugError

    out = {}
    for item in _names(text):
        name, _, w = item.partition(":")
        try:
            weight = float(w) if w.strip() else 1.0
        except ValueError:
            raise NasplugError(f"--aggregate: bad weight {w!r} for {name!r}") from None
        if not math.isfinite(weight) or weight == 0:  # a weight of 0, inf or nan ranks nothing
            raise NasplugError(f"--aggregate: the weight of {name!r} must be finite and non-zero, got {w!r}")
        out[name.strip()] = weight
    if not out:
        raise NasplugError("--aggregate needs at least one NAME[:WEIGHT]")
    return out


def run(args) -> int:
    import sys

    import numpy as np

    from nasplug import search_spaces
    from nasplug.checks import writable_dir
    from nasplug.errors import NasplugError
    from nasplug.ranking import rank_aggregate, score_space
    from nasplug.search import resolve_filter

    scorer_names = _names(args.scorers)
    if not scorer_names:
        raise NasplugError("give at least one scorer with --scorers")
    aggregate = RECOMMENDED_AGGREGATE if (args.aggregate or "").strip() == "recommended" else args.aggregate
    weights = _weights(aggregate) if aggregate else {}
    for name in weights:
        if name not in scorer_names:
            scorer_names.append(name)
    space = search_spaces.get(args.space)
    if args.out:
        writable_dir(args.out, "output folder (--out)")

    table, datasets, metric = None, [], "test_accuracy"
    if args.benchmark:
        from nasplug.nasbench import canonical_dataset, load_benchmark

        if not args.out:
            raise NasplugError("--benchmark writes a report: give --out DIR")
        if args.dataset is not None and not _names(args.dataset):
            raise NasplugError("give at least one --dataset")
        table = load_benchmark(args.benchmark, progress=not args.no_progress)
        metric = args.metric or table.default_metric
        if args.dataset is None:
            datasets = ["cifar10"] if table.benchmark == "nb201" else table.datasets
        else:
            datasets = [canonical_dataset(d) for d in _names(args.dataset)]
            table = table.labelled(datasets)
        for d in datasets:
            table.column(d, metric)  # fail now, before scoring, if the dataset is missing

    progress = not args.no_progress and sys.stderr.isatty()
    if table is not None and table.benchmark != "nb201":
        from nasplug.ranking import score_cells

        if args.sample is not None:
            raise NasplugError("--sample applies to a space; a benchmark file's cells are all scored")
        result = score_cells(table.archs, scorer_names, _names(args.filters), progress=progress)
    else:
        result = score_space(space, scorer_names, _names(args.filters), args.sample, args.seed,
                             progress=progress)
    higher = result.higher_is_better
    if weights:
        result.scores["rank_aggregate"] = rank_aggregate(result.scores, weights, higher)
        higher["rank_aggregate"] = True
    n = len(result.indices)
    where = args.space if result.archs is None else f"{table.benchmark} from {args.benchmark}"
    print(f"scored {n:,} cells of {where} with {', '.join(scorer_names)}")
    keep_all = np.ones(n, dtype=bool)
    for name, keep in result.keep.items():
        print(f"filter {name}: keeps {int(keep.sum()):,} of {n:,} ({keep.mean():.1%})")
        keep_all &= keep
    sort_by = "rank_aggregate" if weights else scorer_names[0]
    order = [p for p in result.order(sort_by) if keep_all[p]][: args.top]
    print(f"\ntop {len(order)} by {sort_by} (passing all filters):")
    shown = [*scorer_names, *(["rank_aggregate"] if weights else [])]
    header = "  ".join(f"{s[:16]:>16}" for s in shown)
    print(f"{'index':>8}  {header}  arch")
    for pos, arch in zip(order, result.arch_strings(order)):
        values = "  ".join(f"{result.scores[s][pos]:>16.6g}" for s in shown)
        print(f"{int(result.indices[pos]):>8}  {values}  {arch}")

    extra = {}
    if table is not None:
        if result.archs is None:
            truths = {d: table.aligned(space, result.indices, d, metric) for d in datasets}
        else:
            truths = {d: table.column(d, metric) for d in datasets}
        extra = {f"{d}_{metric}": v for d, v in truths.items()}
    if args.out:
        path = result.write_csv(f"{args.out}/scores.csv", extra=extra)
        print(f"\nwrote {path}")
    if table is not None:
        from nasplug.nasbench.metrics import spearman_rho
        from nasplug.nasbench.report import write_report
        from nasplug.scorers import oriented

        filters = {name: resolve_filter(name, space if result.archs is None else result.cells())
                   for name in result.keep}
        boxes = {name: (f.depth_range, f.width_range) for name, f in filters.items()
                 if hasattr(f, "depth_range") and hasattr(f, "width_range")}
        files = write_report(args.out, result=result, truths=truths, higher=higher,
                             source=str(args.benchmark), primary=sort_by, benchmark=table.benchmark,
                             metric=metric, boxes=boxes, seeds=args.search_seeds,
                             html_report=not args.no_html)
        for d, truth in truths.items():
            rhos = ", ".join(f"{s} {spearman_rho(oriented(v, higher[s]), truth):+.3f}"
                             for s, v in result.scores.items())
            print(f"{d}: Spearman rho {rhos}")
        print(f"wrote {files['markdown']} and {len(files) - 1} more files in {args.out}")
    return 0
