"""Score a whole search space (or a sample of it) with registered scorers and filters, batched."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nasplug.errors import NasplugError

#: Largest space ``score_space`` scores whole; bigger ones need ``sample``.
MAX_WHOLE_SPACE = 2_000_000


@dataclass
class SpaceScores:
    """Scores of cells of one space: ``indices[i]`` has ``scores[name][i]`` and ``keep[name][i]``."""

    space: object
    indices: np.ndarray
    scores: dict[str, np.ndarray]
    keep: dict[str, np.ndarray]

    def order(self, scorer: str) -> np.ndarray:
        """Positions sorted best first by ``scorer`` (NaN last; ties keep index order)."""
        import scorers

        values = self.scores[scorer]
        if not scorers.get(scorer).higher_is_better:
            values = -values
        return np.lexsort((self.indices, -np.nan_to_num(values, nan=-np.inf)))

    def arch_strings(self, positions: Sequence[int] | None = None) -> list[str]:
        positions = range(len(self.indices)) if positions is None else positions
        return [str(self.space.decode(int(self.indices[p]))) for p in positions]

    def write_csv(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["index", "arch", *self.scores, *(f"keep_{f}" for f in self.keep)])
            for pos, arch in enumerate(self.arch_strings()):
                writer.writerow([
                    int(self.indices[pos]), arch,
                    *(repr(float(v[pos])) for v in self.scores.values()),
                    *(int(k[pos]) for k in self.keep.values()),
                ])
        return path


def score_space(space, scorer_names: Sequence[str], filter_names: Sequence[str] = (),
                sample: int | None = None, seed: int = 0) -> SpaceScores:
    """Score every cell of ``space`` (or ``sample`` distinct uniformly drawn cells) at once."""
    import scorers

    if sample is not None:
        if sample < 1:
            raise NasplugError(f"--sample must be positive, got {sample}")
        rng = np.random.default_rng(seed)
        if space.size <= MAX_WHOLE_SPACE:
            indices = np.sort(rng.choice(space.size, size=min(sample, space.size), replace=False))
        elif space.size < 2**63:
            indices = np.unique(rng.integers(0, space.size, size=sample))
        else:
            raise NasplugError(f"{space} is too large to sample by index")
    elif space.size > MAX_WHOLE_SPACE:
        raise NasplugError(f"{space} has {space.size:.3g} cells; score a sample with --sample N")
    else:
        indices = np.arange(space.size)
    batch = space.batch(indices)
    built = {name: scorers.get(name) for name in scorer_names}
    filters = {name: scorers.get(name) for name in filter_names}
    for name, obj in (*built.items(), *filters.items()):
        want = "keep_many" if name in filters else "score_many"
        if not hasattr(obj, want):
            raise NasplugError(f"{name!r} is not a {'filter' if name in filters else 'scorer'}")
    return SpaceScores(
        space, indices,
        {name: s.score_many(batch) for name, s in built.items()},
        {name: f.keep_many(batch) for name, f in filters.items()},
    )
