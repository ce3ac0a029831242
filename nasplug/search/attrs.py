"""Keys of what a search records per trial (Optuna user attributes; Ray Tune results carry the same).

Reports, the dedupe cache and resumed runs read these back from a study's storage, whichever backend
wrote them, so they are one vocabulary for every integration.
"""

#: The cell as text (its NB201 string or DAG code) and its canonical key (same key = same function).
ATTR_ARCH = "nasplug:arch"
ATTR_KEY = "nasplug:key"
#: True on trials whose value came from an evaluation this search ran (not from the dedupe cache).
ATTR_EVALUATED = "nasplug:evaluated"
#: Number of the trial whose stored value a duplicate reused.
ATTR_DUPLICATE_OF = "nasplug:duplicate_of"
#: Why a trial failed: ``"<reason>: <detail>"`` (reasons: diverged, untrainable, missing, ...).
ATTR_FAIL_REASON = "nasplug:fail_reason"
#: Fail reasons of trials that will not finish but are retried, and so count towards no budget:
#: the worker process died mid-trial, or the trial was interrupted (Ctrl-C).
DEAD_WORKER = "worker_died"
INTERRUPTED = "interrupted"
RETRIED_REASONS = (DEAD_WORKER, INTERRUPTED)
#: Name of the filter that rejected a cell inside the objective (a pruned trial, never trained).
ATTR_REJECTED_BY = "nasplug:rejected_by"
#: The training-free score of the trial's cell, when the search has a scorer.
ATTR_PROXY = "nasplug:proxy"
#: Proposals the filtered sampler drew for this trial (1 = the first one passed).
ATTR_TRIES = "nasplug:filter_tries"
#: Set when no proposal passed the filter: which fallback chose the cell, and the last rejected one.
ATTR_FALLBACK = "nasplug:filter_fallback"
ATTR_REJECTED_PROPOSAL = "nasplug:rejected_proposal"
#: Rank (0 = best) of the trial's cell among the best-scored distinct cells it was started from.
ATTR_SCORED_STARTUP = "nasplug:scored_startup"
#: Number of the trial this one retries (its worker died or it was interrupted).
ATTR_RETRY_OF = "nasplug:retry_of"
#: Set by the training evaluator: the learning rate used and the training time in seconds.
ATTR_LR = "nasplug:lr"
ATTR_TRAIN_SECONDS = "nasplug:train_seconds"
#: Study user attributes ``nasplug:retrained:<job id>``: one retraining of a cell by ``nasplug
#: retrain`` (architecture, trial, final test accuracy, accuracy per epoch, time, device, recipe).
ATTR_RETRAINED = "nasplug:retrained"
