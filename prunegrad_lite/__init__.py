"""prunegrad_lite: PruneGrad (Khakzar et al., arXiv 1911.11081) and its three benchmarks, for teaching.

Every public name is re-exported here explicitly; see ``__all__``.
"""

from __future__ import annotations

from prunegrad_lite.device import model_device, resolve_device

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "model_device",
    "resolve_device",
]
