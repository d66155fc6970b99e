"""localaws: a local AWS for the autoheal tests, built on moto server.

See ``localaws.__main__`` for the design and ``python -m localaws --help``.
"""

__all__ = ["__version__"]
__version__ = "0.1.0"
