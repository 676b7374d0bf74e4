"""The sanity checks' protocol settings (:class:`SanityConfig`); the protocol is described at the
top of :mod:`.sanity` and in ``docs/method.md``.

Example
-------
>>> SanityConfig(inits=("authors", "reset"), draws=3).draws
3
"""

from __future__ import annotations

from dataclasses import dataclass

from prunegrad_lite.benchmarks.similarity import SIMILARITIES

__all__ = ["CORRELATIONS", "INITS", "TARGETS", "VARIANTS", "SanityConfig"]

VARIANTS = ("cascading", "independent")
INITS = ("authors", "reset")
TARGETS = ("original", "randomised")
#: measures whose value is undefined for a constant map (reported with and without those maps)
CORRELATIONS = ("spearman_abs", "spearman", "hog")


@dataclass(frozen=True)
class SanityConfig:
    """The sanity-check protocol; defaults follow Adebayo et al. as the spec states them."""

    variants: tuple[str, ...] = VARIANTS  # "cascading" and/or "independent"
    measures: tuple[str, ...] = ("spearman_abs", "spearman", "ssim")  # add "hog" for HOG
    init_std: float = 0.1  # "authors" init: new weights and biases ~ N(0, init_std**2)
    inits: tuple[str, ...] = ("authors",)  # "authors" (N(0, init_std^2)) and/or "reset"
    draws: int = 1  # independent draws of the new weights per randomisation
    target: str = "original"  # class explained after randomisation: "original" / "randomised"
    depth: int | None = None  # None: one stage per conv/linear (+ its norm); d: group names
    batch_size: int = 64  # images per attribution call
    example_images: int = 1  # images whose maps are kept for the example figure
    # Spearman/HOG of a randomised map that has become constant (e.g. every path to the input
    # pruned or dead): undefined, counted as this value (0: it keeps none of the original's
    # ranking); None leaves such images out of the mean (NaN). Counts are in the settings.
    constant_similarity: float | None = 0.0

    def __post_init__(self) -> None:
        variants = tuple(dict.fromkeys(self.variants))
        if not variants or any(v not in VARIANTS for v in variants):
            raise ValueError(f"variants must be a non-empty subset of {VARIANTS}, got {variants}")
        object.__setattr__(self, "variants", variants)
        measures = tuple(dict.fromkeys(self.measures))
        if not measures or any(m not in SIMILARITIES for m in measures):
            raise ValueError(f"measures must be a non-empty subset of {SIMILARITIES}")
        object.__setattr__(self, "measures", measures)
        inits = tuple(dict.fromkeys(self.inits))
        if not inits or any(i not in INITS for i in inits):
            raise ValueError(f"inits must be a non-empty subset of {INITS}, got {inits}")
        object.__setattr__(self, "inits", inits)
        if self.draws < 1:
            raise ValueError(f"draws must be >= 1, got {self.draws}")
        if self.target not in TARGETS:
            raise ValueError(f"target must be one of {TARGETS}, got {self.target!r}")
        if not self.init_std > 0:
            raise ValueError(f"init_std must be positive, got {self.init_std}")
        if self.depth is not None and self.depth < 1:
            raise ValueError(f"depth must be None or >= 1, got {self.depth}")
        if self.batch_size < 1 or self.example_images < 0:
            raise ValueError("batch_size must be >= 1 and example_images >= 0")
        c = self.constant_similarity
        if c is not None and not -1.0 <= c <= 1.0:
            raise ValueError(f"constant_similarity must be None or in [-1, 1], got {c}")
