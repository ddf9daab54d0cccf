"""The model zoo: a sweep's Pareto set published as Hugging Face repos with evaluation cards.

* :mod:`ntg.zoo.card` — model cards (huggingface_hub ``ModelCard`` + ``EvalResult``) and repo names;
* :mod:`ntg.zoo.publish`, :mod:`ntg.zoo.local` — publish to a hub, or commit to the local zoo's git repos;
* :mod:`ntg.zoo.budget` — the cards' evaluation budget (``CardBudget``);
* :mod:`ntg.zoo.server` — ``ZooServer``: olah serving the local zoo to the standard client;
* :mod:`ntg.zoo.catalog` — list and compare published generators from their cards;
* :mod:`ntg.zoo.index` — the top-level ``zoo/`` index (results CSV per dataset, README, front plot).

Nothing is imported here, so ``ntg zoo serve`` never pays for the evaluation stack.
"""
