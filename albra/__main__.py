"""``python -m albra`` runs the same Typer app as the ``albra`` console script."""

from albra.cli import main

main()
