"""Generator families. Importing this package registers every family with :mod:`ntg.models.base`."""

from ntg.models.base import GENERATORS, Generator, create_generator, load_generator

__all__ = ["GENERATORS", "Generator", "create_generator", "load_generator"]
