"""``rt4ksr <tool> …``: one entry point for every command-line tool (also ``python -m rt4ksr_arch``)."""
import argparse
import importlib
import os
import sys
from typing import List, Optional

import cv2

from rt4ksr_arch.cli.common import ArgumentParser, run_tool

TOOLS = ('upscale', 'evaluate', 'benchmark', 'export', 'convert', 'prepare', 'demo', 'adapt')


def build_parser(prog: str = 'rt4ksr') -> ArgumentParser:
    """One parser with a subcommand per tool (module ``rt4ksr_arch.cli.<tool>``)."""
    parser = ArgumentParser(prog=prog, description='RT4KSR real-time super-resolution tools.')
    sub = parser.add_subparsers(dest='tool', required=True, metavar='{' + ','.join(TOOLS) + '}')
    for name in TOOLS:
        module = importlib.import_module(f'rt4ksr_arch.cli.{name.replace("-", "_")}')
        tool_parser = sub.add_parser(name, help=module.HELP, description=(module.__doc__ or '').strip(),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(tool_parser)
        tool_parser.set_defaults(run=module.run, tool_parser=tool_parser)
    return parser


def main(argv: Optional[List[str]] = None, prog: Optional[str] = None) -> int:
    """Parse ``argv`` (default: the command line) and run the tool; the exit status."""
    args, unknown = build_parser(prog or os.path.basename(sys.argv[0]) or 'rt4ksr').parse_known_args(argv)
    if unknown:  # named by the tool's own help, which lists what it takes
        args.tool_parser.error(f'unrecognized arguments: {" ".join(unknown)}')
    # OpenCV logs its own decode warnings to stderr; the tools report every failure themselves
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    return run_tool(args.run, args)


if __name__ == '__main__':
    sys.exit(main())
