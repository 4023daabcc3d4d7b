"""`python -m archopt.cli`: the command line."""

from archopt.cli import main

main()
