"""``nasplug rank``: score a whole search space without training and list the best cells."""

from __future__ import annotations

DEFAULT_SCORERS = ["effective_width", "effective_depth", "num_paths"]
DEFAULT_FILTERS = ["dag_box"]


def add_parser(sub) -> None:
    p = sub.add_parser(
        "rank",
        help="score every cell of a search space and list the best",
        description="Scores a whole space with registered scorers (see `nasplug scorers`), "
        "sorts by the first one and applies the filters. No data needed.",
    )
    p.add_argument("--space", default="nb201", help="search space (default nb201; see `nasplug spaces`)")
    p.add_argument("--scorers", default=",".join(DEFAULT_SCORERS),
                   help="comma-separated scorers; the first one sorts (default %(default)s)")
    p.add_argument("--filters", default=",".join(DEFAULT_FILTERS),
                   help="comma-separated filters, '' for none (default %(default)s)")
    p.add_argument("--sample", type=int, help="score this many random cells instead of all")
    p.add_argument("--seed", type=int, default=0, help="seed of --sample")
    p.add_argument("--top", type=int, default=10, help="how many cells to print")
    p.add_argument("--out", help="directory for scores.csv")
    p.set_defaults(func=run)


def _names(text: str) -> list[str]:
    return [n.strip() for n in text.split(",") if n.strip()]


def run(args) -> int:
    import numpy as np

    import search_spaces
    from nasplug.errors import NasplugError
    from nasplug.ranking import score_space

    scorer_names = _names(args.scorers)
    if not scorer_names:
        raise NasplugError("give at least one scorer with --scorers")
    space = search_spaces.get(args.space)
    result = score_space(space, scorer_names, _names(args.filters), args.sample, args.seed)
    n = len(result.indices)
    print(f"scored {n:,} cells of {args.space} with {', '.join(scorer_names)}")
    keep_all = np.ones(n, dtype=bool)
    for name, keep in result.keep.items():
        print(f"filter {name}: keeps {int(keep.sum()):,} of {n:,} ({keep.mean():.1%})")
        keep_all &= keep
    order = [p for p in result.order(scorer_names[0]) if keep_all[p]][: args.top]
    print(f"\ntop {len(order)} by {scorer_names[0]} (passing all filters):")
    header = "  ".join(f"{s[:16]:>16}" for s in scorer_names)
    print(f"{'index':>8}  {header}  arch")
    for pos, arch in zip(order, result.arch_strings(order)):
        values = "  ".join(f"{result.scores[s][pos]:>16.6g}" for s in scorer_names)
        print(f"{int(result.indices[pos]):>8}  {values}  {arch}")
    if args.out:
        path = result.write_csv(f"{args.out}/scores.csv")
        print(f"\nwrote {path}")
    return 0
