"""``python -m rt4ksr_arch <tool> …``: the same as the ``rt4ksr`` command."""
import sys

from rt4ksr_arch.cli.main import main

if __name__ == '__main__':
    sys.exit(main(prog='python -m rt4ksr_arch'))
