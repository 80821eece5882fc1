"""``python -m blacksmith_mini`` is the ``blacksmith-mini`` command."""

from blacksmith_mini.cli import main

main()
