"""``albra upgrade --to REF``: a new albra version installed beside the old one and switched to atomically, with a
verified store backup and a rollback on any failure (docs/adr/0020-upgrade.md).

:mod:`layout` knows the install root (releases and the ``current`` symlink), :mod:`backup` the SQLite online backup
and its verification, :mod:`install` how a release is built from a git ref, :mod:`procedure` the ordered steps and
the rollback."""
