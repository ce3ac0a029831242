"""``nasplug describe ARCH``: codecs, canonical form, path statistics and every registered score."""

from __future__ import annotations

import json
import math


def add_parser(sub) -> None:
    p = sub.add_parser(
        "describe",
        help="show an architecture's encodings, path statistics and scores",
        description="ARCH is an NB201 string, a DAG code (2_21_112) or a NASLib tuple "
        "('(4, 3, 3, 3, 2, 3)').",
    )
    p.add_argument("arch", help="the architecture")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.set_defaults(func=run)


def describe(arch) -> dict:
    """Everything ``describe`` reports, as a JSON-ready dict."""
    from nasplug import scorers
    from nasplug.graph import ArchGraph

    arch = ArchGraph.parse(arch)
    stats = arch.path_stats()
    info = {
        "arch": str(arch),
        "nb201": arch.to_nb201(),
        "nodes": arch.n_nodes,
        "edges": {f"{s}->{t}": op.name for (s, t), op in arch.edges.items()},
        "live_edges": len(arch.live_edges()),
        "canonical_form": arch.canonical_form(),
        "canonical_key": arch.canonical_key(),
        **stats.as_dict(),
        "scores": {},
        "filters": {},
    }
    for name in scorers.available("scorer"):
        value = scorers.get(name).score(arch)
        info["scores"][name] = value if math.isfinite(value) else None
    for name in scorers.available("filter"):
        info["filters"][name] = scorers.get(name).keep(arch)
    return info


def run(args) -> int:
    info = describe(args.arch)
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    width = 20
    for key in ("arch", "nb201", "nodes", "live_edges", "canonical_form", "canonical_key", "num_paths",
                "effective_depth", "effective_width", "max_depth", "sum_depth_cubed", "depth_histogram"):
        value = info[key]
        if isinstance(value, float):
            value = f"{value:.6g}"
        print(f"{key:<{width}} {value}")
    print("scores:")
    for name, value in info["scores"].items():
        print(f"  {name:<{width - 2}} {'n/a' if value is None else f'{value:.6g}'}")
    print("filters (keep?):")
    for name, keep in info["filters"].items():
        print(f"  {name:<{width - 2}} {'keep' if keep else 'reject'}")
    return 0
