"""KST day arithmetic: the integer day (KST is a fixed UTC+9) gives exactly what the calendar in the KST zone says,
for the day's text and for its first millisecond."""

from __future__ import annotations

import random
from datetime import datetime

from albra.timefmt import KST, kst_date, kst_day_start_ms


def test_kst_day_equals_the_calendar_at_every_boundary_and_at_random() -> None:
    rnd = random.Random(16)
    midnight_kst = 1_733_497_200_000  # 2024-12-07 00:00 KST
    edges = [midnight_kst + d for d in (-1, 0, 1)] + [0, -1, -86_400_000, 32_400_000 - 1, 32_400_000]
    for ms in edges + [rnd.randint(-10**12, 5 * 10**12) for _ in range(20_000)]:
        d = datetime.fromtimestamp(ms / 1000, tz=KST)
        assert kst_date(ms) == d.strftime("%Y-%m-%d"), ms
        start = d.replace(hour=0, minute=0, second=0, microsecond=0)
        assert kst_day_start_ms(ms) == int(start.timestamp() * 1000), ms
    assert (kst_date(midnight_kst - 1), kst_date(midnight_kst)) == ("2024-12-06", "2024-12-07")
