"""A sampler wrapper that never lets an architecture failing a topology filter reach the objective.

Design
------
Optuna samples a trial's parameters one ``suggest_*`` call at a time, but a topology filter (the
[C22 §5.3] box on effective depth and width) is a property of the *whole* cell: no single edge can be
judged alone. :class:`PruningSampler` therefore draws the architecture **jointly**, the first time
the trial asks for any of its edges, and answers every later edge of that trial from the accepted
cell:

* If the base sampler models the edges jointly (multivariate TPE — Optuna's default for single
  objectives — or the GP sampler, once their relative search space contains the edges), the joint
  draw happens in :meth:`sample_relative`, which asks the base sampler's ``sample_relative`` for
  whole proposals.
* Otherwise (random search, CMA-ES, which does not model categoricals, independent TPE, and every
  sampler's first trials before anything has completed) the joint draw happens in
  :meth:`sample_independent` on the first edge: each proposal is the base sampler's own independent
  draw of every edge, so the proposals follow exactly the distribution the base sampler would use.

A proposal that fails the filter is discarded and the base sampler asked again, at most
``max_tries`` times. Discarded proposals never become trials, so nothing rejected is ever trained
and the base sampler's history contains only cells that passed. Model-based samplers often propose
the *same* cell again (TPE's argmax over l/g is nearly deterministic on a small categorical space),
so the loop also stops after ``patience`` repeated proposals. The fallback (``fallback=``) is then
``"nearest"`` (default): the passing cell closest in Hamming distance to the last proposal, ties
broken at random — it keeps what the base sampler wanted on as many edges as possible;
``"uniform"``: a uniformly drawn passing cell; or ``"proposal"``: the last (rejected) proposal
itself. Either way the trial is marked with the user attributes ``nasplug:filter_fallback`` and
``nasplug:rejected_proposal`` and ``nasplug:filter_tries`` counts the proposals.

Why not reject inside the objective only? Raising :class:`optuna.TrialPruned` before training
(:func:`~nasplug.optuna.prune_before_training`) is also offered, for users who keep their own sampler,
and it lets TPE learn from the rejections; but every rejection costs a trial in the study's budget
and in the storage. The sampler wrapper spends no trials at all on rejected cells, and
non-architecture parameters pass straight through to the base sampler, so the wrapper composes with
any objective.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler
from optuna.trial import FrozenTrial, TrialState

from nasplug.errors import NasplugError
from nasplug.graph import ArchGraph
from nasplug.optuna.params import (
    ATTR_FALLBACK,
    ATTR_PROXY,
    ATTR_REJECTED_PROPOSAL,
    ATTR_TRIES,
    arch_distributions,
    resolve_space,
)
from scorers.base import oriented

if TYPE_CHECKING:
    from optuna.study import Study

    from search_spaces.base import ProductSpace

#: Spaces up to this size get a precomputed keep-mask (fast lookups, exact nearest/uniform fallback).
MASK_LIMIT = 2_000_000

FALLBACKS = ("nearest", "uniform", "proposal")


def resolve_filter(filter: Any, space: ProductSpace | str) -> Any:
    """A filter object from itself, ``None``/``"none"`` (no filter) or a registered name.

    Names whose factory takes a ``space`` (like ``dag_box``, fitted on the space) get the space.
    """
    if filter is None or (isinstance(filter, str) and filter.lower() in ("", "none")):
        return None
    if not isinstance(filter, str):
        if not hasattr(filter, "keep_many"):
            raise NasplugError(f"{filter!r} is not a filter (needs keep/keep_many)")
        return filter
    import scorers

    filters = scorers.available("filter")
    if filter not in filters:
        raise NasplugError(f"unknown filter {filter!r}; available: {', '.join(filters)} or none")
    try:
        return scorers.get(filter, space=space)
    except NasplugError:
        return scorers.get(filter)


def resolve_scorer(scorer: Any) -> Any:
    """A scorer object from itself, ``None`` or a registered name."""
    if scorer is None or isinstance(scorer, str) and scorer.lower() in ("", "none"):
        return None
    if isinstance(scorer, str):
        import scorers

        return scorers.get(scorer)
    return scorer


class ArchFilterIndex:
    """Fast filter decisions over a product space, by mixed-radix index.

    For spaces up to :data:`MASK_LIMIT` cells the whole keep-mask is computed once with the filter's
    vectorized ``keep_many`` (15,625 NB201 cells: ~10 ms), which also makes the ``nearest`` and
    ``uniform`` fallbacks exact. Larger spaces ask the filter per cell and search locally.
    """

    def __init__(self, space: ProductSpace, filter: Any):
        self.space, self.filter = space, filter
        self._mask: np.ndarray | None = None
        self._passing: np.ndarray | None = None
        self._lock = threading.Lock()
        self.base = len(space.ops)
        self.powers = self.base ** np.arange(len(space.pairs) - 1, -1, -1, dtype=object)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_lock": None}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    @property
    def exact(self) -> bool:
        return self.space.size <= MASK_LIMIT

    def _ensure_mask(self) -> None:
        with self._lock:
            if self._mask is None:
                mask = np.asarray(self.filter.keep_many(self.space.batch()), dtype=bool)
                self._passing = np.flatnonzero(mask)
                self._mask = mask

    def index(self, digits: Sequence[int]) -> int:
        return int(sum(int(d) * int(p) for d, p in zip(digits, self.powers)))

    def keep(self, digits: Sequence[int]) -> bool:
        if self.filter is None:
            return True
        if self.exact:
            self._ensure_mask()
            return bool(self._mask[self.index(digits)])
        return bool(self.filter.keep(self.space.from_digits(digits)))

    def any_passing(self) -> bool:
        if self.filter is None:
            return True
        if self.exact:
            self._ensure_mask()
            return len(self._passing) > 0
        return True  # unknown without enumerating; the local search below reports failure

    def nearest(self, digits: Sequence[int], rng: np.random.Generator) -> tuple[int, ...] | None:
        """A passing cell at the smallest Hamming distance from ``digits`` (ties at random)."""
        digits = np.asarray(digits, dtype=np.int64)
        if self.exact:
            self._ensure_mask()
            if len(self._passing) == 0:
                return None
            candidates = self.space.digit_matrix(self._passing)
            distance = (candidates != digits[None, :]).sum(axis=1)
            best = np.flatnonzero(distance == distance.min())
            return tuple(int(d) for d in candidates[rng.choice(best)])
        # Large space: all cells at distance 1, then random cells at distance 2, then uniform.
        for radius, n_samples in ((1, None), (2, 4000)):
            cells = self._ball(digits, radius, n_samples, rng)
            if cells:
                keep = np.asarray(self.filter.keep_many([self.space.from_digits(c) for c in cells]))
                if keep.any():
                    return cells[int(rng.choice(np.flatnonzero(keep)))]
        return self.uniform(rng)

    def _ball(self, digits: np.ndarray, radius: int, n_samples: int | None,
              rng: np.random.Generator) -> list[tuple[int, ...]]:
        n_edges, out = len(digits), []
        if radius == 1:
            for e in range(n_edges):
                for d in range(self.base):
                    if d != digits[e]:
                        cell = digits.copy()
                        cell[e] = d
                        out.append(tuple(int(x) for x in cell))
            return out
        for _ in range(n_samples or 0):
            cell = digits.copy()
            for e in rng.choice(n_edges, size=min(radius, n_edges), replace=False):
                cell[e] = (cell[e] + rng.integers(1, self.base)) % self.base
            out.append(tuple(int(x) for x in cell))
        return out

    def uniform(self, rng: np.random.Generator, max_draws: int = 20_000) -> tuple[int, ...] | None:
        """A uniformly drawn passing cell (rejection sampling on large spaces)."""
        if self.exact:
            self._ensure_mask()
            if len(self._passing) == 0:
                return None
            return self.space.digits(int(rng.choice(self._passing)))
        n_edges = len(self.space.pairs)
        for _ in range(0, max_draws, 1000):
            block = rng.integers(self.base, size=(1000, n_edges))
            keep = np.asarray(self.filter.keep_many([self.space.from_digits(r) for r in block.tolist()]))
            if keep.any():
                return tuple(int(x) for x in block[int(np.flatnonzero(keep)[0])])
        return None


class PruningSampler(BaseSampler):
    """Wrap any Optuna sampler so that architectures failing a filter are re-drawn, never trained.

    Parameters
    ----------
    base_sampler
        The sampler that proposes parameters (default: ``optuna.samplers.TPESampler()``). Every
        non-architecture parameter is delegated to it unchanged.
    filter
        A filter object (``keep``/``keep_many``), a registered filter name (``"dag_box"``,
        ``"dag_box_authors"``) or ``None``/``"none"`` for no filtering.
    scorer
        Optional training-free scorer (object or registered name). Its value for the chosen cell is
        stored as the user attribute ``nasplug:proxy``; with ``candidates > 1`` the sampler gathers
        that many distinct passing proposals and keeps the best-scoring one (a proxy pre-screen).
    max_tries
        Most proposals asked of the base sampler per trial before falling back.
    space
        The search space (object or name, default ``"nb201"``) whose edges are the architecture
        parameters — the same one the objective passes to :func:`~nasplug.optuna.suggest_architecture`.
    prefix
        Parameter-name prefix of the architecture (as given to ``suggest_architecture``).
    fallback
        ``"nearest"``, ``"uniform"`` or ``"proposal"`` (see the module docstring).
    patience
        Stop asking once this many proposals of this trial repeated an earlier one (a model-based
        sampler that keeps returning the same few rejected cells will not find a new one).
    candidates
        With a scorer, how many distinct passing proposals to compare (default 1: no pre-screen).
    relative_retries
        How many joint proposals to ask of the base sampler's ``sample_relative`` per trial before
        the remaining tries use its cheap independent draws. ``None``: all ``max_tries`` for TPE
        (a joint TPE draw costs milliseconds), 1 for other samplers — a GP proposal optimizes an
        acquisition function (~1 s) and tends to return the same point when asked again.
    seed
        Seed of the wrapper's own random choices (fallback tie-breaks).

    Examples
    --------
    >>> import optuna
    >>> from nasplug.optuna import PruningSampler, suggest_architecture
    >>> sampler = PruningSampler(optuna.samplers.TPESampler(seed=0), filter="dag_box", space="nb201")
    >>> study = optuna.create_study(direction="maximize", sampler=sampler)
    >>> study.optimize(lambda t: suggest_architecture(t, "nb201").path_stats().num_paths, n_trials=5)
    """

    def __init__(
        self,
        base_sampler: BaseSampler | None = None,
        filter: Any = "dag_box",
        scorer: Any = None,
        max_tries: int = 20,
        *,
        space: ProductSpace | str = "nb201",
        prefix: str = "",
        fallback: str = "nearest",
        patience: int = 3,
        candidates: int = 1,
        relative_retries: int | None = None,
        seed: int | None = None,
    ) -> None:
        if max_tries < 1:
            raise NasplugError(f"max_tries must be at least 1, got {max_tries}")
        if fallback not in FALLBACKS:
            raise NasplugError(f"fallback must be one of {', '.join(FALLBACKS)}, got {fallback!r}")
        if candidates < 1:
            raise NasplugError(f"candidates must be at least 1, got {candidates}")
        self._base = base_sampler if base_sampler is not None else optuna.samplers.TPESampler(seed=seed)
        self._space = resolve_space(space)
        self._filter = resolve_filter(filter, self._space)
        self._scorer = resolve_scorer(scorer)
        self._max_tries = int(max_tries)
        self._fallback = fallback
        self._patience = max(1, int(patience))
        self._candidates = int(candidates)
        if relative_retries is None:
            relative_retries = max_tries if isinstance(self._base, optuna.samplers.TPESampler) else 1
        self._relative_retries = max(1, int(relative_retries))
        self._seed = seed
        self._rng = np.random.default_rng(seed)
        self._dists = arch_distributions(self._space, prefix)
        self._choices = [tuple(d.choices) for d in self._dists.values()]
        self._index = ArchFilterIndex(self._space, self._filter)
        # Accepted architectures of trials in progress, by trial id: the joint draw happens on the
        # first edge and every other edge of the trial is answered from it.
        self._pending: dict[int, dict[str, Any]] = {}
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ properties
    @property
    def base_sampler(self) -> BaseSampler:
        return self._base

    @property
    def filter(self) -> Any:
        return self._filter

    @property
    def space(self) -> ProductSpace:
        return self._space

    @property
    def arch_distributions(self) -> dict[str, BaseDistribution]:
        return dict(self._dists)

    def __str__(self) -> str:
        name = getattr(self._filter, "name", "none") if self._filter is not None else "none"
        return f"PruningSampler({self._base}, filter={name})"

    def __getstate__(self) -> dict[str, Any]:  # picklable for multiprocessing (locks are not)
        state = self.__dict__.copy()
        state["_lock"] = None
        state["_pending"] = {}
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ Optuna sampler API
    def reseed_rng(self) -> None:
        self._base.reseed_rng()
        self._rng = np.random.default_rng()

    def before_trial(self, study: Study, trial: FrozenTrial) -> None:
        self._base.before_trial(study, trial)

    def after_trial(self, study: Study, trial: FrozenTrial, state: TrialState,
                    values: Sequence[float] | None) -> None:
        with self._lock:
            self._pending.pop(trial._trial_id, None)
        self._base.after_trial(study, trial, state, values)

    def infer_relative_search_space(self, study: Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        # Exactly the base sampler's relative space: the edges are relative only when the base
        # sampler models them jointly, which is when its joint proposals are worth filtering.
        return self._base.infer_relative_search_space(study, trial)

    def sample_relative(self, study: Study, trial: FrozenTrial,
                        search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        arch_names = [n for n in search_space if self._is_arch_param(n, search_space[n])]
        if not arch_names:
            return self._base.sample_relative(study, trial, search_space)
        if self._pending_for(trial) is not None:  # already drawn (sample_relative called again)
            proposal = self._base.sample_relative(
                study, trial, {n: d for n, d in search_space.items() if n not in self._dists})
            return {**proposal, **{n: self._pending_for(trial)[n] for n in arch_names}}

        state: dict[str, Any] = {"first": None, "asked": 0}

        def propose() -> dict[str, Any]:
            if state["asked"] < self._relative_retries:
                params = dict(self._base.sample_relative(study, trial, search_space))
                state["asked"] += 1
            else:  # cheap independent re-draws of the edges only
                params = {n: v for n, v in state["first"].items() if n not in self._dists}
            if state["first"] is None:
                state["first"] = params
            for name, dist in self._dists.items():
                if name not in params:
                    params[name] = self._base.sample_independent(study, trial, name, dist)
            return params

        accepted = self._draw(study, trial, propose)
        # Non-architecture relative parameters come from the accepted joint proposal (the same point
        # of the base sampler's model), or from the first proposal when the draw fell back.
        source = accepted["_proposal"] or state["first"] or {}
        out = {n: v for n, v in source.items() if n in search_space and n not in self._dists}
        out.update({n: accepted[n] for n in arch_names})
        return out

    def sample_independent(self, study: Study, trial: FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution) -> Any:
        if not self._is_arch_param(param_name, param_distribution):
            return self._base.sample_independent(study, trial, param_name, param_distribution)
        pending = self._pending_for(trial)
        if pending is None:
            # Edges already fixed in this trial (enqueued, or suggested before) keep their value, so
            # the filter judges the cell the objective will really get.
            fixed = {**trial.system_attrs.get("fixed_params", {}), **trial.params}

            def propose() -> dict[str, Any]:
                params = {}
                for name, dist in self._dists.items():
                    if name in fixed and fixed[name] in dist.choices:
                        params[name] = fixed[name]
                    else:
                        params[name] = self._base.sample_independent(study, trial, name, dist)
                return params

            pending = self._draw(study, trial, propose)
        return pending[param_name]

    # ------------------------------------------------------------------ the joint draw
    def _is_arch_param(self, name: str, distribution: BaseDistribution) -> bool:
        return name in self._dists and distribution == self._dists[name]

    def _pending_for(self, trial: FrozenTrial) -> dict[str, Any] | None:
        with self._lock:
            return self._pending.get(trial._trial_id)

    def _digits(self, params: dict[str, Any]) -> tuple[int, ...]:
        return tuple(choices.index(params[name]) for name, choices in zip(self._dists, self._choices))

    def _params(self, digits: Sequence[int]) -> dict[str, Any]:
        return {name: choices[int(d)] for (name, choices), d in zip(zip(self._dists, self._choices), digits)}

    def _draw(self, study: Study, trial: FrozenTrial,
              propose: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        """Ask the base sampler for whole architectures until one passes; fall back if none does."""
        passing: list[tuple[tuple[int, ...], dict[str, Any]]] = []
        rejected: set[tuple[int, ...]] = set()
        repeats, tries, last = 0, 0, None
        attrs: dict[str, Any] = {}
        while tries < self._max_tries and len(passing) < self._candidates:
            params = propose()
            tries += 1
            digits = self._digits(params)
            last = digits
            if self._index.keep(digits):
                if all(d != digits for d, _ in passing):
                    passing.append((digits, params))
                else:
                    repeats += 1
            elif digits in rejected:
                repeats += 1
            else:
                rejected.add(digits)
            if repeats >= self._patience:
                break
        if passing:
            chosen, proposal = self._best(passing)
        else:
            proposal = None
            chosen = None
            if self._fallback == "nearest":
                chosen = self._index.nearest(last, self._rng)
            elif self._fallback == "uniform":
                chosen = self._index.uniform(self._rng)
            kind = self._fallback if chosen is not None else "proposal"
            if chosen is None:
                chosen = last
                if self._fallback != "proposal":
                    kind = "none_passes"
            attrs[ATTR_FALLBACK] = kind
            attrs[ATTR_REJECTED_PROPOSAL] = str(self._space.from_digits(last))
        attrs[ATTR_TRIES] = tries
        accepted = self._params(chosen)
        if self._scorer is not None:
            attrs[ATTR_PROXY] = float(self._scorer.score(self._space.from_digits(chosen)))
        for key, value in attrs.items():
            study._storage.set_trial_user_attr(trial._trial_id, key, value)
        with self._lock:
            self._pending[trial._trial_id] = accepted
        return {**accepted, "_proposal": proposal}

    def _best(self, passing: list[tuple[tuple[int, ...], dict[str, Any]]]) -> tuple[tuple[int, ...], Any]:
        if self._scorer is None or len(passing) == 1:
            return passing[0]
        archs: list[ArchGraph] = [self._space.from_digits(d) for d, _ in passing]
        scores = oriented(self._scorer, self._scorer.score_many(archs))
        scores = np.where(np.isfinite(scores), scores, -np.inf)
        return passing[int(np.argmax(scores))]
