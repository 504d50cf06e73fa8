"""apple-net-analyzer: do the Apple services a network's Macs and iPhones need actually work?

The package reads packet captures (or a live interface), follows every flow,
and ties each one to the documented Apple service it belongs to.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
