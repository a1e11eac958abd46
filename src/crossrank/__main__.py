"""``python -m crossrank`` runs the command line."""

from crossrank.cli import run

run()
