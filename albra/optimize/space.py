"""Search ranges a strategy declares next to its ``Params`` (class attribute ``search_space``).

Why declared in the strategy file: the person who knows what ``adx_min`` means also knows its sensible range;
``albra optimize`` then needs no range flags. Every range is checked against ``Params`` (the key exists and both
ends validate), so a search can never propose a value the strategy would refuse.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence, Union


@dataclass(frozen=True)
class IntRange:
    low: int
    high: int
    step: int = 1

    def suggest(self, trial: Any, name: str) -> int:
        return trial.suggest_int(name, self.low, self.high, step=self.step)

    def ends(self) -> list[Any]:
        return [self.low, self.high]


@dataclass(frozen=True)
class FloatRange:
    low: float
    high: float
    step: float | None = None
    log: bool = False

    def suggest(self, trial: Any, name: str) -> float:
        return trial.suggest_float(name, self.low, self.high, step=self.step, log=self.log)

    def ends(self) -> list[Any]:
        return [self.low, self.high]


@dataclass(frozen=True)
class Choice:
    options: Sequence[Any]

    def suggest(self, trial: Any, name: str) -> Any:
        return trial.suggest_categorical(name, list(self.options))

    def ends(self) -> list[Any]:
        return list(self.options)


Range = Union[IntRange, FloatRange, Choice]


class SpaceError(ValueError):
    """A strategy without a search space, or a range its Params would refuse."""


def space_of(cls: Any, only: Sequence[str] | None = None) -> dict[str, Range]:
    """The strategy's declared ranges (optionally only some keys), each checked against its Params."""
    space: dict[str, Range] = dict(getattr(cls, "search_space", {}) or {})
    if not space:
        raise SpaceError(f"{cls.name} declares no search_space next to its Params: nothing to optimise")
    if only:
        unknown = [k for k in only if k not in space]
        if unknown:
            raise SpaceError(f"--only {', '.join(unknown)}: not in {cls.name}.search_space "
                             f"({', '.join(space)})")
        space = {k: space[k] for k in only}
    from albra.strategy_params import ParamError, validate_params

    for key, rng in space.items():
        for v in rng.ends():
            try:
                validate_params(cls, {key: v})
            except ParamError as e:
                raise SpaceError(f"{cls.name}.search_space[{key!r}] = {rng}: {e}") from None
    return space
