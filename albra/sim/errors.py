"""Binance-shaped rejections raised by the simulated exchange.

The core raises :class:`SimError` with Binance's numeric code, message and HTTP status, so the
server can answer exactly what Binance would and in-process callers (paper, backtests) see the same
reasons a live account would give.
"""

from __future__ import annotations


class SimError(Exception):
    """A rejection with Binance's ``code`` / ``msg`` and the HTTP status Binance uses for it."""

    def __init__(self, code: int, msg: str, http_status: int = 400) -> None:
        super().__init__(f"{code}: {msg}")
        self.code = code
        self.msg = msg
        self.http_status = http_status

    def payload(self) -> dict:
        return {"code": self.code, "msg": self.msg}


def bad_symbol(symbol: str) -> SimError:
    return SimError(-1121, f"Invalid symbol. ({symbol!r} is not listed on this simulated exchange; "
                           f"`albra sim markets` lists the Binance USDⓈ-M markets it can simulate)")


def bad_param(msg: str) -> SimError:
    return SimError(-1102, msg)


def no_such_order() -> SimError:
    return SimError(-2013, "Order does not exist.")


def unknown_order_cancel() -> SimError:
    return SimError(-2011, "Unknown order sent.")


def insufficient_margin() -> SimError:
    return SimError(-2019, "Margin is insufficient.")


def reduce_only_rejected() -> SimError:
    return SimError(-2022, "ReduceOnly Order is rejected.")
