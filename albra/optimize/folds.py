"""Walk-forward windows: optimise on one window, report on the next, keep a final holdout nobody optimised on.

Layout of ``[start, end)``: the last ``holdout`` share is the final out-of-sample window; the rest is cut into
``folds + 1`` equal segments and fold *i* trains on segment *i* and is tested on segment *i + 1* (rolling), so every
test window lies after its training window and none is reused for training within its own fold. The final study
trains on the whole in-sample range and is reported on the holdout. Windows are whole days (UTC) so a fold never
splits a day.
"""

from __future__ import annotations

from dataclasses import dataclass

DAY_MS = 86_400_000


@dataclass(frozen=True)
class Window:
    start_ms: int
    end_ms: int

    @property
    def days(self) -> int:
        return (self.end_ms - self.start_ms) // DAY_MS


@dataclass(frozen=True)
class Fold:
    name: str  # "fold1".., or "final"
    train: Window
    test: Window


def plan(start_ms: int, end_ms: int, folds: int, holdout: float) -> list[Fold]:
    """The folds and the final (train on all in-sample, test on the holdout), in that order."""
    if folds < 1:
        raise ValueError(f"--folds must be at least 1, got {folds}")
    if not 0 < holdout < 1:
        raise ValueError(f"--holdout must be a share in (0, 1), got {holdout}")
    days = (end_ms - start_ms) // DAY_MS
    hold_days = max(1, round(days * holdout))
    seg = (days - hold_days) // (folds + 1)
    if seg < 1:
        raise ValueError(f"{days} days cannot be split into {folds + 1} training/test segments plus a holdout")
    s0 = start_ms
    cut = [s0 + i * seg * DAY_MS for i in range(folds + 2)]
    insample_end = end_ms - hold_days * DAY_MS
    out = [Fold(f"fold{i + 1}", Window(cut[i], cut[i + 1]), Window(cut[i + 1], cut[i + 2] if i + 2 <= folds else
                                                                    insample_end))
           for i in range(folds)]
    out.append(Fold("final", Window(start_ms, insample_end), Window(insample_end, end_ms)))
    return out
