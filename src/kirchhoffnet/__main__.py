"""``python -m kirchhoffnet``: the command line (also what ``torchrun -m kirchhoffnet`` runs)."""

from kirchhoffnet.cli.main import app

app()
