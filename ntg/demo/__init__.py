"""``ntg demo`` / ``make demo``: the whole platform end to end on embedded defaults.

Prepare ``iot-sentinel``, run two small multi-objective sweeps on a local Ray instance (``baseline``: the
Markov chain; ``neural``: transformer, SSM, diffusion), compute their Pareto fronts, publish both fronts to a
local zoo with test-split evaluation cards, serve the zoo to the plain Hugging Face client, download one
generator back, check that it samples the same flows as the published one, compare the two fronts from the
cards, and stop the server.

* :mod:`ntg.demo.budget` — the budgets (and how they were measured) and the demo's search space;
* :mod:`ntg.demo.steps` — resumable steps recorded in ``WORKDIR/steps.json`` and the summary table;
* :mod:`ntg.demo.run` — :func:`run_demo`, the steps in order; :mod:`ntg.demo.hub` — the served steps.
"""

from ntg.demo.run import run_demo

__all__ = ["run_demo"]
