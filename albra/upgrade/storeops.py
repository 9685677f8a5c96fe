"""The few store writes the upgrade makes (journal, pause, resume), runnable by either albra.

Why: ``albra upgrade`` runs from the old release; once the new release has migrated the store, the old code refuses
to open it (a newer schema). Each write is first tried with the running code and, when the store is newer, made by
the new release's own interpreter: ``python -m albra.upgrade.storeops OP JSON``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ACTOR = "upgrade"


def apply(db: Path, op: str, args: dict[str, Any]) -> str:
    """Run one write with this code (raises NewerSchemaError when the store is newer than this code)."""
    from albra.store import Store, flags, journal

    with Store.open(db, create=False, migrate=False) as s:
        if op == "journal":
            journal.append(s, args["kind"], args["message"], level=args.get("level", "INFO"),
                           data=args.get("data") or {}, actor=ACTOR)
            return "journaled"
        if op == "pause":
            if any(f.kind == flags.PAUSE and not f.account for f in flags.active_flags(s)):
                return "already"
            flags.pause(s, reason=args["reason"], actor=ACTOR)
            return "paused"
        if op == "resume":
            flags.resume(s, reason=args["reason"], actor=ACTOR)
            return "resumed"
    raise ValueError(f"unknown store op {op!r}")


def apply_anywhere(db: Path, op: str, args: dict[str, Any], release_python: Path | None) -> str:
    """:func:`apply` with this code, or with ``release_python``'s albra when the store's schema is newer."""
    from albra.store import NewerSchemaError

    try:
        return apply(db, op, args)
    except NewerSchemaError:
        if release_python is None:
            raise
    out = subprocess.run([str(release_python), "-m", "albra.upgrade.storeops", str(db), op, json.dumps(args)],
                         capture_output=True, text=True, timeout=120, cwd=release_python.parent)
    if out.returncode != 0:
        raise RuntimeError(f"store {op} through {release_python} failed: {out.stderr.strip()[-300:]}")
    return out.stdout.strip()


if __name__ == "__main__":
    print(apply(Path(sys.argv[1]), sys.argv[2], json.loads(sys.argv[3])))
