"""Multi-objective architecture search: declarative spaces, `ntg sweep` on Ray Tune + Optuna, Pareto fronts.

* :mod:`ntg.search.objectives` — the one list of objective names and directions;
* :mod:`ntg.search.space` — ``search_spaces/*.yaml`` → Optuna define-by-run → :class:`TrialConfig`;
* :mod:`ntg.search.trial` — one trial (budget check, the training loop, the fast evaluation), a Tune
  function trainable;
* :mod:`ntg.search.driver` — what the driver plugs into Tune (searcher, per-family ASHA, record callback);
* :mod:`ntg.search.sweep` — ``run_sweep``: storage, Ray, resume; :mod:`ntg.search.records` — the sweep folder;
* :mod:`ntg.search.pareto` — fronts and hypervolume over the trial records (``ntg pareto``).

Nothing is imported here: ``ntg pareto`` and the space checks must not pay for importing Ray.
"""
