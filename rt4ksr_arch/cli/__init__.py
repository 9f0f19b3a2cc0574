"""Command-line tools: ``rt4ksr <tool>`` (or ``python -m rt4ksr_arch <tool>``), thin over the library.

Each tool module provides ``HELP`` (one line), ``add_arguments(parser)`` and ``run(args) -> int``;
``rt4ksr_arch.cli.main`` wires them into one parser. Library modules never import from here.
"""
