"""The carn-da command: carn-da COMMAND ... (carn-da COMMAND --help)."""
import argparse
import importlib
import sys

from carn_da import __version__

COMMANDS = {
    'train': ('carn_da.pipelines', 'train with BasicSR: carn-da train -opt OPTIONS.yml (in the current folder)'),
    'test': ('carn_da.pipelines', 'test with BasicSR: carn-da test -opt OPTIONS.yml (in the current folder)'),
    'eval': ('carn_da.evaluate', 'score models on ground truths at several JPEG qualities (Table 1)'),
    'restore': ('carn_da.restore', 'restore JPEG images with a trained CARN'),
    'adapt': ('carn_da.adapt', 'adapt a trained CARN to your JPEGs without their ground truth'),
    'route': ('carn_da.route', 'join models for different JPEG qualities into one that routes each image'),
    'models': ('carn_da.list_models', 'list the shipped models, their scores and model cards'),
    'import': ('carn_da.import_model', 'convert a published MatConvNet model (e.g. DnCNN-3) into a carn-da model'),
}


def run_pipeline(command, argv):
    """BasicSR's train or test pipeline in the current folder; BasicSR reads its arguments from ``sys.argv``."""
    pipelines = importlib.import_module(COMMANDS[command][0])
    sys.argv = [f'carn-da {command}', *argv]
    return pipelines.run_in_current_folder(getattr(pipelines, f'{command}_pipeline'), f'carn-da {command}')


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog='carn-da',
        description=__doc__,
        epilog='commands:\n' + '\n'.join(f'  {name:10}{text}' for name, (_, text) in COMMANDS.items()),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--version', action='version', version=f'carn-da {__version__}')
    parser.add_argument('command', choices=COMMANDS, metavar='COMMAND', help=', '.join(COMMANDS))
    parser.add_argument('args', nargs=argparse.REMAINDER, help='its arguments')
    args = parser.parse_args(argv)
    if args.command in ('train', 'test'):
        return run_pipeline(args.command, args.args)
    return importlib.import_module(COMMANDS[args.command][0]).main(args.args)


if __name__ == '__main__':
    sys.exit(main())
