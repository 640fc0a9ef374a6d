"""`python -m seqrec.cli …` runs the command line."""

from seqrec.cli.app import main

main()
