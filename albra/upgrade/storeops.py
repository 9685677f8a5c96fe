"""The few store writes the upgrade makes (journal, pause, resume), by whichever albra matches the store.

Why: the code running ``albra upgrade`` and the store may be of different versions — the old release runs it and
the new one has migrated the store, or a newer checkout upgrades an older install. Each write is made by this code
when the store's schema is this code's, otherwise by the interpreter of the release ``current`` points at (which
matches the store before the switch and after the migration). The snippet run there uses only ``journal.append`` and
``flags.pause/resume/active_flags``, which every albra version has.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ACTOR = "upgrade"

SNIPPET = """
import json, sys
from albra.store import Store, flags, journal
db, op, args = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
s = Store.open(db, create=False, migrate=False)
try:
    if op == "journal":
        journal.append(s, args["kind"], args["message"], level=args.get("level", "INFO"), data=args.get("data") or {},
                       actor="upgrade")
        print("journaled")
    elif op == "pause":
        if any(f.kind == flags.PAUSE and not f.account for f in flags.active_flags(s)):
            print("already")
        else:
            flags.pause(s, reason=args["reason"], actor="upgrade")
            print("paused")
    elif op == "resume":
        flags.resume(s, reason=args["reason"], actor="upgrade")
        print("resumed")
    else:
        raise SystemExit("unknown store op " + op)
finally:
    s.close()
"""


def apply_anywhere(db: Path, op: str, args: dict[str, Any], release_python: Path | None) -> str:
    """Run one store write (``journal``, ``pause`` or ``resume``) with this code, or with ``release_python`` when the
    store's schema is not this code's. Returns what the snippet printed (``already`` for a pause already on)."""
    from albra.store import SCHEMA_VERSION, Store

    with Store.open(db, create=False, any_version=True) as s:
        mine = s.schema_version() == SCHEMA_VERSION
    python = Path(sys.executable) if mine or release_python is None else release_python
    out = subprocess.run([str(python), "-c", SNIPPET, str(db), op, json.dumps(args, default=str)],
                         capture_output=True, text=True, timeout=120, cwd=str(db.parent))
    if out.returncode != 0:
        raise RuntimeError(f"store {op} through {python} failed: {out.stderr.strip()[-300:]}")
    return out.stdout.strip()
