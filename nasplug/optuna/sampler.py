"""A sampler wrapper that never lets an architecture failing a topology filter reach the objective.

Design
------
Optuna samples a trial's parameters one ``suggest_*`` call at a time, but a topology filter (the
[C22 §5.3] box on effective depth and width) is a property of the *whole* cell: no single edge can be
judged alone. :class:`FilteredSampler` therefore draws the architecture **jointly**, the first time
the trial asks for any of its edges, and answers every later edge of that trial from the accepted
cell:

* If the base sampler models the edges jointly (multivariate TPE — Optuna's default for single
  objectives — the GP sampler, or NSGA-II's crossover of two parents, once their relative search
  space contains the edges), the joint draw happens in :meth:`sample_relative`, which asks the base
  sampler's ``sample_relative`` for whole proposals (edges it leaves out, e.g. NSGA-II's mutations,
  come from its ``sample_independent``).
* Otherwise (random search, CMA-ES, which does not model categoricals, independent TPE — Optuna's
  default for several objectives —, NSGA-II's first generation, and every sampler's first trials
  before anything has completed) the joint draw happens in
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

**Scored startup** (``scored_startup=n`` with a ``scorer``): while fewer than ``n`` trials of the
study have finished, each new trial gets the next of the best-scored, mutually distinct cells of the
filtered space (:func:`nasplug.search.seeding.scored_cells`) that no trial of the study holds yet,
instead of a blind proposal. That replaces the base sampler's random startup and, when K trials run
in parallel, the whole first batch of K (``benchmarks/parallel_efficiency.py``).

Why not reject inside the objective only? Raising :class:`optuna.TrialPruned` before training
(:func:`~nasplug.optuna.prune_before_training`) is also offered, for users who keep their own sampler,
and it lets TPE learn from the rejections; but every rejection costs a trial in the study's budget
and in the storage. The sampler wrapper spends no trials at all on rejected cells, and
non-architecture parameters pass straight through to the base sampler, so the wrapper composes with
any objective.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler
from optuna.trial import FrozenTrial, TrialState

from nasplug.errors import NasplugError
from nasplug.graph import ArchGraph
from nasplug.optuna.params import arch_distributions
from nasplug.scorers import oriented
from nasplug.search import keep_mask, resolve_filter, resolve_scorer
from nasplug.search.attrs import (
    ATTR_ARCH,
    ATTR_FALLBACK,
    ATTR_PROXY,
    ATTR_REJECTED_PROPOSAL,
    ATTR_SCORED_STARTUP,
    ATTR_TRIES,
)
from nasplug.search.seeding import scored_cells
from nasplug.search_spaces import DigitSpace, resolve_space

if TYPE_CHECKING:
    from optuna.study import Study

FALLBACKS = ("nearest", "uniform", "proposal")


class FilteredSampler(BaseSampler):
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
        the remaining tries use its cheap independent draws. ``None``: all ``max_tries`` for TPE and
        NSGA-II (a joint TPE draw or an NSGA-II crossover costs milliseconds; NSGA-II's independent
        draws are uniform), 1 for other samplers — a GP proposal optimizes an acquisition function
        (~1 s) and tends to return the same point when asked again.
    scored_startup
        With a scorer: while fewer than this many trials of the study have finished (complete or
        pruned), propose the best-scored distinct passing cells not yet in the study (module
        docstring). ``0`` (default): off.
    seed
        Seed of the wrapper's own random choices (fallback tie-breaks, ties between equal scores).

    Examples
    --------
    >>> import optuna
    >>> from nasplug.optuna import FilteredSampler, suggest_architecture
    >>> sampler = FilteredSampler(optuna.samplers.TPESampler(seed=0), filter="dag_box", space="nb201")
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
        space: DigitSpace | str = "nb201",
        prefix: str = "",
        fallback: str = "nearest",
        patience: int = 3,
        candidates: int = 1,
        relative_retries: int | None = None,
        scored_startup: int = 0,
        seed: int | None = None,
    ) -> None:
        if max_tries < 1:
            raise NasplugError(f"max_tries must be at least 1, got {max_tries}")
        if fallback not in FALLBACKS:
            raise NasplugError(f"fallback must be one of {', '.join(FALLBACKS)}, got {fallback!r}")
        if candidates < 1:
            raise NasplugError(f"candidates must be at least 1, got {candidates}")
        if scored_startup < 0:
            raise NasplugError(f"scored_startup must be at least 0, got {scored_startup}")
        self._base = base_sampler if base_sampler is not None else optuna.samplers.TPESampler(seed=seed)
        self._space = resolve_space(space)
        self._filter = resolve_filter(filter, self._space)
        self._scorer = resolve_scorer(scorer, self._space)
        self._max_tries = int(max_tries)
        self._fallback = fallback
        self._patience = max(1, int(patience))
        self._candidates = int(candidates)
        if relative_retries is None:
            cheap = (optuna.samplers.TPESampler, optuna.samplers.NSGAIISampler)
            relative_retries = max_tries if isinstance(self._base, cheap) else 1
        self._relative_retries = max(1, int(relative_retries))
        self._seed = seed
        self._rng = np.random.default_rng(seed)
        self._dists = arch_distributions(self._space, prefix)
        self._choices = [tuple(d.choices) for d in self._dists.values()]
        self._index = keep_mask(self._space, self._filter)
        if scored_startup and self._scorer is None:
            raise NasplugError("scored_startup needs a scorer (e.g. scorer='live_param_cost')")
        self._scored_startup = int(scored_startup)
        self._startup_over = not scored_startup
        self._scored: list[tuple[int, ...]] = []  # computed on first use, extended when used up
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
    def space(self) -> DigitSpace:
        return self._space

    @property
    def arch_distributions(self) -> dict[str, BaseDistribution]:
        return dict(self._dists)

    def __str__(self) -> str:
        name = getattr(self._filter, "name", "none") if self._filter is not None else "none"
        return f"FilteredSampler({self._base}, filter={name})"

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
        fixed = self._fixed(trial)

        def propose() -> dict[str, Any]:
            if state["asked"] < self._relative_retries:
                params = dict(self._base.sample_relative(study, trial, search_space))
                state["asked"] += 1
            else:  # cheap independent re-draws of the edges only
                params = {n: v for n, v in state["first"].items() if n not in self._dists}
            if state["first"] is None:
                state["first"] = params
            # Optuna gives fixed (enqueued) parameters precedence over relative ones, so the
            # filter must judge the cell with them, not the base sampler's values.
            params.update(fixed)
            for name, dist in self._dists.items():
                if name not in params:
                    params[name] = self._base.sample_independent(study, trial, name, dist)
            return params

        accepted = self._draw(study, trial, propose, fixed)
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
            fixed = self._fixed(trial)

            def propose() -> dict[str, Any]:
                return {name: fixed[name] if name in fixed else
                        self._base.sample_independent(study, trial, name, dist)
                        for name, dist in self._dists.items()}

            pending = self._draw(study, trial, propose, fixed)
        return pending[param_name]

    # ------------------------------------------------------------------ the joint draw
    def _fixed(self, trial: FrozenTrial) -> dict[str, Any]:
        """Architecture parameters this trial must keep: enqueued ones (``study.enqueue_trial``,
        Optuna's ``fixed_params``) and ones already suggested."""
        given = {**trial.system_attrs.get("fixed_params", {}), **trial.params}
        return {n: v for n, v in given.items() if n in self._dists and v in self._dists[n].choices}

    def _is_arch_param(self, name: str, distribution: BaseDistribution) -> bool:
        return name in self._dists and distribution == self._dists[name]

    def _pending_for(self, trial: FrozenTrial) -> dict[str, Any] | None:
        with self._lock:
            return self._pending.get(trial._trial_id)

    def _digits(self, params: dict[str, Any]) -> tuple[int, ...]:
        return tuple(choices.index(params[name]) for name, choices in zip(self._dists, self._choices))

    def _params(self, digits: Sequence[int]) -> dict[str, Any]:
        return {name: choices[int(d)] for (name, choices), d in zip(zip(self._dists, self._choices), digits)}

    def _next_scored(self, study: Study, trial: FrozenTrial) -> tuple[int, tuple[int, ...]] | None:
        """``(rank, cell)``: the best-scored distinct cell no trial of the study holds, while the
        scored startup lasts (``None`` after it, or for a trial with enqueued parameters)."""
        if self._startup_over or trial.system_attrs.get("fixed_params"):
            return None
        trials = study.get_trials(deepcopy=False)
        finished = sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials)
        if finished >= self._scored_startup:
            self._startup_over = True  # finished trials never become unfinished
            return None
        held = {ArchGraph.parse(t.user_attrs[ATTR_ARCH]).canonical_key() for t in trials
                if ATTR_ARCH in t.user_attrs}
        while True:
            if not self._scored:
                self._scored = scored_cells(self._space, self._scorer, self._filter,
                                            n=max(256, 4 * self._scored_startup), rng=self._seed)
            for rank, cell in enumerate(self._scored):
                if self._space.from_digits(cell).canonical_key() not in held:
                    return rank, cell
            more = scored_cells(self._space, self._scorer, self._filter, n=2 * len(self._scored),
                                rng=self._seed)
            if len(more) == len(self._scored):
                return None  # every distinct passing cell is in the study already
            self._scored = more

    def _draw(self, study: Study, trial: FrozenTrial, propose: Callable[[], dict[str, Any]],
              fixed: dict[str, Any]) -> dict[str, Any]:
        """Ask the base sampler for whole architectures until one passes; fall back if none does.
        The fallbacks change only edges that are not ``fixed``; when no completion of the fixed
        edges passes, the trial is marked ``none_passes`` (the objective then prunes it)."""
        startup = self._next_scored(study, trial)
        if startup is not None:
            rank, cell = startup
            attrs = {ATTR_SCORED_STARTUP: rank, ATTR_TRIES: 0}
            return self._accept(study, trial, cell, None, attrs)
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
            pinned = [name in fixed for name in self._dists]
            if self._fallback == "nearest":
                chosen = self._index.nearest(last, self._rng, fixed=pinned)
            elif self._fallback == "uniform":
                chosen = self._index.uniform(self._rng, fixed=[d if p else -1 for d, p in zip(last, pinned)])
            kind = self._fallback if chosen is not None else "proposal"
            if chosen is None:
                chosen = last
                if self._fallback != "proposal":
                    kind = "none_passes"
            attrs[ATTR_FALLBACK] = kind
            attrs[ATTR_REJECTED_PROPOSAL] = self._describe(last)
        attrs[ATTR_TRIES] = tries
        return self._accept(study, trial, chosen, proposal, attrs)

    def _accept(self, study: Study, trial: FrozenTrial, chosen: Sequence[int], proposal: Any,
                attrs: dict[str, Any]) -> dict[str, Any]:
        """Record the chosen cell for the rest of the trial's edges, with its attributes."""
        accepted = self._params(chosen)
        if self._scorer is not None:
            attrs[ATTR_PROXY] = float(self._scorer.score(self._space.from_digits(chosen)))
        for key, value in attrs.items():
            study._storage.set_trial_user_attr(trial._trial_id, key, value)
        with self._lock:
            self._pending[trial._trial_id] = accepted
        return {**accepted, "_proposal": proposal}

    def _describe(self, digits: Sequence[int]) -> str:
        """The proposal's cell, or its parameters when the digits are no cell of the space."""
        if self._space.valid_digits(np.asarray([digits]))[0]:
            return str(self._space.from_digits(digits))
        return f"not a cell: {self._params(digits)}"

    def _best(self, passing: list[tuple[tuple[int, ...], dict[str, Any]]]) -> tuple[tuple[int, ...], Any]:
        if self._scorer is None or len(passing) == 1:
            return passing[0]
        archs: list[ArchGraph] = [self._space.from_digits(d) for d, _ in passing]
        scores = oriented(self._scorer.score_many(archs), self._scorer.higher_is_better)
        scores = np.where(np.isfinite(scores), scores, -np.inf)
        return passing[int(np.argmax(scores))]


class PruningSampler(FilteredSampler):
    """Deprecated alias of :class:`FilteredSampler` (renamed in 0.2: an Optuna *pruner* stops a
    running trial, while this sampler rejects proposals before they become trials)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        warnings.warn("nasplug.optuna.PruningSampler is deprecated: use FilteredSampler (same "
                      "arguments); the alias will be removed in the next release",
                      FutureWarning, stacklevel=2)
        super().__init__(*args, **kwargs)
