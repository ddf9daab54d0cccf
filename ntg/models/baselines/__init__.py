"""Classical baselines with the Generator interface; importing this package registers them."""

from ntg.models.baselines.bootstrap import BootstrapGenerator
from ntg.models.baselines.gmm import GMMGenerator
from ntg.models.baselines.marginals import MarginalsGenerator
from ntg.models.baselines.markov import MarkovGenerator

__all__ = ["BootstrapGenerator", "GMMGenerator", "MarginalsGenerator", "MarkovGenerator"]
