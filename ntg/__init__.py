"""ntg: lightweight generative models of network traffic."""
__version__ = "0.1.0"
