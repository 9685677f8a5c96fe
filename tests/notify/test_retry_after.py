"""429 ``retry_after`` in both of python-telegram-bot's forms: a timedelta (PTB_TIMEDELTA=1, which albra opts into so
PTB 22's deprecation warning goes away) and the old int (an operator who sets PTB_TIMEDELTA=false)."""

from __future__ import annotations

import datetime as dt
import os
import warnings

import pytest

from albra.notify.transport import PTB_TIMEDELTA_ENV, RETRY_AFTER, classify


def test_albra_opts_into_timedelta_and_no_deprecation_warning_is_raised() -> None:
    from telegram import error as tg

    assert os.environ.get(PTB_TIMEDELTA_ENV) == "1"  # set on import of albra.notify.transport
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        exc = tg.RetryAfter(7)
        assert isinstance(exc.retry_after, dt.timedelta)
        e = classify(exc)
    assert [w for w in caught if "retry_after" in str(w.message)] == []
    assert (e.kind, e.retry_after_s) == (RETRY_AFTER, 7.0) and "retry after 7 s" in e.description


@pytest.mark.parametrize("value", ["false", "0"])
def test_int_form_still_classified(monkeypatch, value) -> None:
    from telegram import error as tg

    monkeypatch.setenv(PTB_TIMEDELTA_ENV, value)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PTB warns about the int form while building the exception
        exc = tg.RetryAfter(dt.timedelta(seconds=3))
        assert exc.retry_after == 3  # the old int form
    e = classify(exc)
    assert (e.kind, e.retry_after_s) == (RETRY_AFTER, 3.0)
