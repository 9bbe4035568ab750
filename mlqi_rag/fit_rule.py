"""The rule by which a fitted setting replaces the one used before.

A grid's best point, picked on the same questions it is scored on, flatters itself. So it
replaces the setting before only when its paired per-item gain over it is larger than one
standard error of that gain. Items are questions or gold quotes, grouped by corpus, and each
corpus counts once however many items it has (the seeds must not be outvoted by the 36
transcripts, nor the other way round).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any, TypeVar

import numpy as np

T = TypeVar("T")


def paired_gain(differences: Sequence[np.ndarray]) -> tuple[float, float]:
    """The mean of per-item differences (best minus before), each group weighted equally, and
    its standard error. Empty groups are left out."""
    groups = [np.asarray(d, dtype=np.float64) for d in differences if len(d)]
    if not groups:
        return 0.0, 0.0
    k = len(groups)
    gain = sum(float(d.mean()) for d in groups) / k
    var = sum((float(d.var(ddof=1)) if len(d) > 1 else 0.0) / len(d) for d in groups) / k**2
    return gain, math.sqrt(var)


def pick(best: T, before: T, differences: Sequence[np.ndarray]) -> tuple[T, float, float]:
    """``best`` if it beats ``before`` by more than one standard error, else ``before``; with
    the gain and its standard error."""
    gain, se = paired_gain(differences)
    return (best if gain > se else before), gain, se


def decision(best: Any, before: Any, chosen: Any, gain: float, se: float) -> dict[str, Any]:
    """What every fit reports about its pick (the settings are dataclasses or dicts)."""

    def plain(setting: Any) -> dict[str, Any]:
        return dict(setting) if isinstance(setting, dict) else asdict(setting)

    return {
        "best": plain(best),
        "best_gain": round(gain, 4),
        "best_gain_se": round(se, 4),
        "chosen": plain(chosen),
        "baseline": plain(before),
        "kept_baseline": chosen == before,
    }
