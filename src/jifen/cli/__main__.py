"""`python -m jifen.cli`, the same as the `jifen` command."""

from jifen.cli import main

main()
