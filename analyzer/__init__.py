"""apple-net-analyzer: do the Apple services a network's Macs and iPhones need actually work?

The package reads packet captures (or a live interface), follows every flow,
ties each one to the documented Apple service it belongs to, and says whether
it worked and, if not, what was in the way.

    >>> import analyzer
    >>> a = analyzer.analyze("capture.pcapng")
    >>> a.headline, a.services, a.flows, a.dns, a.findings
"""

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = ["Analysis", "__version__", "analyze", "samples_path"]

if TYPE_CHECKING:
    from analyzer.analysis import Analysis, analyze
    from analyzer.samples import samples_path


def __getattr__(name: str) -> Any:
    # Lazy: `apple-net services` should not pay for importing the engine and pandas.
    if name in ("analyze", "Analysis"):
        from analyzer import analysis

        return getattr(analysis, name)
    if name == "samples_path":  # the bundled captures, wherever the notebook or script runs
        from analyzer.samples import samples_path

        return samples_path
    raise AttributeError(name)
