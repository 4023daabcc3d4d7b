"""`python -m archopt`: the command line."""

from archopt.cli import main

main()
