"""Test with BasicSR: ``python carn_da/test.py -opt options/X.yml`` (``python -m carn_da.test``, ``carn-da test``).

Results go under the current folder (``results/<name>``), where the relative paths of the option file are read from.
"""
import sys

from carn_da.pipelines import run_in_current_folder, test_pipeline

if __name__ == '__main__':
    sys.exit(run_in_current_folder(test_pipeline, 'carn_da.test'))
