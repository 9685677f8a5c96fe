"""Structured logging: one JSON object per line with KST time, readable console lines, size rotation
and owner-only files."""

from __future__ import annotations

import io
import json
import logging
import re
import stat
from pathlib import Path

import pytest

from albra.log import setup_logging, teardown_logging

KST_RE = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} KST$")


@pytest.fixture(autouse=True)
def _restore_root_logger():
    root = logging.getLogger()
    level = root.level
    yield
    teardown_logging()
    root.setLevel(level)


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_json_lines_with_kst_time_and_extra_fields(tmp_path):
    console = io.StringIO()
    log_file = setup_logging(tmp_path / "logs", "runner-demo", stream=console)
    assert log_file == tmp_path / "logs" / "runner-demo.log"
    log = logging.getLogger("albra.engine")
    log.info("entry %s %s", "BTCUSDT", "LONG", extra={"account": "demo", "strategy": "TFPE", "qty": 0.01})
    log.debug("not shown at INFO")
    # A record with a known creation time: 2024-01-01 00:00:00 UTC is 09:00:00 KST.
    rec = log.makeRecord("albra.engine", logging.WARNING, __file__, 1, "fixed time", None, None)
    rec.created = 1_704_067_200.25
    log.handle(rec)

    first, second = lines(log_file)
    assert first["msg"] == "entry BTCUSDT LONG"
    assert first["level"] == "INFO" and first["logger"] == "albra.engine" and first["component"] == "runner-demo"
    assert (first["account"], first["strategy"], first["qty"]) == ("demo", "TFPE", 0.01)
    assert isinstance(first["ts_ms"], int) and KST_RE.match(first["time"])
    assert second["ts_ms"] == 1_704_067_200_250 and second["time"] == "2024-01-01 09:00:00 KST"

    out = console.getvalue().splitlines()
    assert re.match(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} KST INFO    entry BTCUSDT LONG  account=demo", out[0])
    assert out[1] == "2024-01-01 09:00:00 KST WARNING fixed time"


def test_exception_text_is_one_field(tmp_path):
    log_file = setup_logging(tmp_path, "cli", console=False)
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        logging.getLogger("x").exception("failed")
    (rec,) = lines(log_file)
    assert rec["level"] == "ERROR" and rec["msg"] == "failed"
    assert rec["exc"].startswith("Traceback") and "RuntimeError: boom" in rec["exc"]


def test_files_are_owner_only_and_rotate_by_size(tmp_path):
    log_dir = tmp_path / "logs"
    log_file = setup_logging(log_dir, "bot", console=False, max_bytes=2_000, backup_count=2)
    assert stat.S_IMODE(log_dir.stat().st_mode) == 0o700
    log = logging.getLogger("albra.bot")
    for i in range(200):
        log.info("line %d %s", i, "x" * 50)
    files = sorted(p.name for p in log_dir.iterdir())
    assert files == ["bot.log", "bot.log.1", "bot.log.2"]  # keep N=2 backups, no more
    for p in log_dir.iterdir():
        assert stat.S_IMODE(p.stat().st_mode) == 0o600, p
        assert p.stat().st_size <= 2_000
        for rec in lines(p):
            assert rec["component"] == "bot"
    assert lines(log_file)[-1]["msg"].startswith("line 199 ")


def test_existing_wide_open_file_and_dir_are_tightened(tmp_path):
    log_dir = tmp_path / "logs"
    log_dir.mkdir(mode=0o755)
    (log_dir / "cli.log").write_text("")
    (log_dir / "cli.log").chmod(0o644)
    log_dir.chmod(0o755)
    setup_logging(log_dir, "cli", console=False)
    assert stat.S_IMODE(log_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE((log_dir / "cli.log").stat().st_mode) == 0o600


def test_setup_twice_replaces_its_own_handlers_only(tmp_path):
    foreign = logging.NullHandler()
    logging.getLogger().addHandler(foreign)
    try:
        setup_logging(tmp_path, "a", console=False)
        log_file = setup_logging(tmp_path, "a", console=False)
        logging.getLogger("t").warning("once")
        assert [r["msg"] for r in lines(log_file)] == ["once"]
        assert foreign in logging.getLogger().handlers
    finally:
        logging.getLogger().removeHandler(foreign)


def test_settings_object_gives_the_log_dir(tmp_path, monkeypatch):
    from albra.config import load_settings

    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "albra.toml").write_text('[paths]\nlog_dir = "var/log"\n[telegram]\nenabled = false\n')
    monkeypatch.chdir(tmp_path)
    settings = load_settings("config/albra.toml")
    assert setup_logging(settings, "cli", console=False) == tmp_path.resolve() / "var" / "log" / "cli.log"


@pytest.mark.parametrize("component,level", [("../x", "INFO"), ("Bad Name", "INFO"), ("ok", "LOUD")])
def test_bad_arguments_are_refused(tmp_path, component, level):
    with pytest.raises(ValueError):
        setup_logging(tmp_path, component, level=level)
