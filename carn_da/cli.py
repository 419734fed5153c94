"""The ``carn-da`` command: ``carn-da restore|adapt|route ...`` (``carn-da COMMAND --help``)."""
import argparse
import importlib
import sys

COMMANDS = {
    'restore': ('carn_da.restore', 'restore JPEG images with a trained CARN'),
    'adapt': ('carn_da.adapt', 'adapt a trained CARN to your JPEGs without their ground truth'),
    'route': ('carn_da.route', 'join models for different JPEG qualities into one that routes each image'),
}


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog='carn-da',
        description=__doc__,
        epilog='commands:\n' + '\n'.join(f'  {name:10}{text}' for name, (_, text) in COMMANDS.items()),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('command', choices=COMMANDS, metavar='COMMAND', help=', '.join(COMMANDS))
    parser.add_argument('args', nargs=argparse.REMAINDER, help='its arguments')
    args = parser.parse_args(argv)
    return importlib.import_module(COMMANDS[args.command][0]).main(args.args)


if __name__ == '__main__':
    sys.exit(main())
