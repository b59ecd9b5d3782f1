"""`python -m iwae ...` is the `iwae` command."""

from iwae.cli import main

main()
