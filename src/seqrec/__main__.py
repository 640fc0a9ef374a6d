"""`python -m seqrec …` (and `torchrun -m seqrec train …`) runs the command line."""

from seqrec.cli import main

main()
