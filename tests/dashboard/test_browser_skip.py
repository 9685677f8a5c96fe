"""Where Chromium cannot be installed the browser tests skip with the install script's reason, or fail when the host
must run them (ALBRA_REQUIRE_BROWSER=1)."""

from __future__ import annotations

import pytest

from tests.dashboard import conftest


def test_missing_browser_skips_with_the_reason(monkeypatch, tmp_path):
    marker = tmp_path / "tests" / ".browser-unavailable"
    marker.parent.mkdir()
    marker.write_text("apt-get update failed (is the package mirror reachable?)\n")
    monkeypatch.setattr(conftest, "__file__", str(tmp_path / "tests" / "dashboard" / "conftest.py"))
    monkeypatch.delenv("ALBRA_REQUIRE_BROWSER", raising=False)
    with pytest.raises(pytest.skip.Exception, match="could not install it: apt-get update failed"):
        conftest._no_browser("/usr/bin/chromium not found")
    monkeypatch.setenv("ALBRA_REQUIRE_BROWSER", "1")
    with pytest.raises(pytest.fail.Exception, match="/usr/bin/chromium not found"):
        conftest._no_browser("/usr/bin/chromium not found")
