"""``nasplug describe ARCH``: codecs, canonical form, path statistics and every registered score."""

from __future__ import annotations

import json
import math

from nasplug.search_spaces import MAX_DAG_NODES


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


def encodings(arch) -> dict:
    """The cell in every encoding that can express it (``None`` where one cannot): ``nb201`` and
    ``naslib`` only for cells of NAS-Bench-201's space (4 nodes, its five ops), ``dag_code`` only
    for zero/skip/linear cells, ``notation`` (the NB201 notation, any DAG) always."""
    from nasplug import search_spaces
    from nasplug.errors import ArchError

    nb201 = arch in search_spaces.get("nb201")
    try:
        code = arch.to_dag_code()
    except ArchError:
        code = None
    return {"nb201": arch.to_nb201() if nb201 else None, "naslib": list(arch.to_naslib()) if nb201 else None,
            "dag_code": code, "notation": arch.to_nb201()}


def canonical(arch) -> dict:
    """The canonical form (``None`` when it is longer than
    :data:`~nasplug.graph.canonical.CANONICAL_FORM_LIMIT` characters) and its exact length."""
    from nasplug.graph.canonical import CANONICAL_FORM_LIMIT

    length = arch.canonical_form_length()
    return {"canonical_form": arch.canonical_form() if length <= CANONICAL_FORM_LIMIT else None,
            "canonical_form_length": length}


def describe(arch) -> dict:
    """Everything ``describe`` reports, as a JSON-ready dict."""
    from nasplug import scorers
    from nasplug.graph import ArchGraph

    arch = ArchGraph.parse(arch)
    stats = arch.path_stats()
    info = {
        "arch": str(arch),
        **encodings(arch),
        "nodes": arch.n_nodes,
        "edges": {f"{s}->{t}": op.name for (s, t), op in arch.edges.items()},
        "live_edges": len(arch.live_edges()),
        **canonical(arch),
        "canonical_key": arch.canonical_key(),
        **stats.as_dict(),
        "scores": {},
        "filters": {},
    }
    # Scorers that build and run a network per cell (NASWOT, synflow) take minutes and GBs beyond
    # the largest DAG spaces; above that size they are skipped and the output says so.
    too_large = arch.n_nodes > MAX_DAG_NODES
    info["skipped_scores"] = []
    for name in scorers.available("scorer"):
        if too_large and scorers.is_slow(name):
            info["scores"][name] = None
            info["skipped_scores"].append(name)
            continue
        value = scorers.get(name).score(arch)
        info["scores"][name] = value if math.isfinite(value) else None
    for name in scorers.available("filter"):
        info["filters"][name] = scorers.get(name).keep(arch)
    return info


def _why_not_nb201(info: dict) -> str:
    from nasplug.ops import NB201_OPS

    names = {op.name for op in NB201_OPS}
    other = sorted({op for op in info["edges"].values() if op not in names})
    if info["nodes"] != 4:
        return f"{info['nodes']} nodes, NAS-Bench-201 cells have 4"
    return f"op{'s' if len(other) > 1 else ''} {', '.join(other)} not in NAS-Bench-201's vocabulary"


def run(args) -> int:
    from nasplug.checks import format_count

    info = describe(args.arch)
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    width = 20
    missing = {"nb201": f"n/a (not a NAS-Bench-201 cell: {_why_not_nb201(info)})",
               "naslib": "n/a (NAS-Bench-201 cells only)",
               "dag_code": "n/a (ops other than zero/skip/linear; see `notation`)",
               "canonical_form": f"n/a (too long: {format_count(info['canonical_form_length'])} characters; "
                                 "compare cells by canonical_key)"}
    for key in ("arch", "nb201", "naslib", "dag_code", "notation", "nodes", "live_edges", "canonical_form",
                "canonical_key", "num_paths", "effective_depth", "effective_width", "max_depth",
                "sum_depth_cubed", "depth_histogram"):
        value = info[key]
        if key == "notation" and info["nb201"] is not None:
            continue  # the same string as the nb201 line
        if value is None:
            value = missing[key]
        elif key == "naslib":
            value = tuple(value)
        elif isinstance(value, float):
            value = f"{value:.6g}"
        print(f"{key:<{width}} {value}")
    print("scores:")
    for name, value in info["scores"].items():
        shown = "n/a" if value is None else f"{value:.6g}"
        if name in info["skipped_scores"]:
            shown = f"n/a (builds a network per cell: skipped above {MAX_DAG_NODES} nodes)"
        print(f"  {name:<{width - 2}} {shown}")
    print("filters (keep?):")
    for name, keep in info["filters"].items():
        print(f"  {name:<{width - 2}} {'keep' if keep else 'reject'}")
    return 0
