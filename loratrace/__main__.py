"""``python -m loratrace``: the same command line as the ``loratrace`` script."""

from loratrace.cli import main

main()
