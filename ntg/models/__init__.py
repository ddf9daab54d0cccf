"""Generator families. Importing this package registers every family with :mod:`ntg.models.base`."""

import ntg.models.baselines  # noqa: F401
import ntg.models.diffusion  # noqa: F401
import ntg.models.ssm  # noqa: F401
import ntg.models.transformer  # noqa: F401
from ntg.models.base import GENERATORS, Generator, create_generator, load_generator

__all__ = ["GENERATORS", "Generator", "create_generator", "load_generator"]
