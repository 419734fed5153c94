"""The option files in options/ are the recipes of carn_da/recipes.py, key for key, so the two cannot drift."""
import glob
import pytest
import re
import yaml
from os import path as osp
from tiny import REPO

from carn_da import recipes


def recipe_of(path):
    """The recipes.option_file / test_file call that an option file's name stands for."""
    name = osp.basename(path)
    setting = recipes.DEMO if osp.basename(osp.dirname(path)) == 'demo' else recipes.PAPER
    found = re.fullmatch(r'(train|test)_(\w+?)_(?:demo_)?(sq_qf(\d+)|bq|da_(lq2hq|hq2lq)(_recommended)?)\.yml', name)
    assert found, f'{name}: no recipe is known for this option file name'
    phase, backbone, _, qf, direction, recommended = found.groups()
    if phase == 'test':
        return recipes.test_file(backbone, int(qf), setting)
    if qf:
        return recipes.option_file('sq', backbone, int(qf), setting=setting)
    source, target = (10, 70) if direction != 'hq2lq' else (70, 10)
    kind = 'bq' if direction is None else 'recommended' if recommended else 'da'
    return recipes.option_file(kind, backbone, source, target, setting)


OPTION_FILES = sorted(glob.glob(osp.join(REPO, 'options', '**', '*.yml'), recursive=True))


@pytest.mark.parametrize('path', OPTION_FILES, ids=[osp.relpath(p, REPO) for p in OPTION_FILES])
def test_option_file_is_its_recipe(path):
    with open(path, encoding='utf-8') as f:
        written = yaml.safe_load(f)
    assert written == recipe_of(path)


def test_every_recipe_kind_has_an_option_file():
    assert len(OPTION_FILES) >= 25
