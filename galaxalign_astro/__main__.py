"""``python -m galaxalign_astro`` runs the command-line tool."""

from .cli.main import cli

if __name__ == "__main__":
    cli(prog_name="galaxalign-astro")
