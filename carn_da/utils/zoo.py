"""The project's shipped models: weights made by ``scripts/train_zoo.py``, kept as package data with a checksum each.

A models folder (``carn_da/weights``, or the folder named by the environment variable ``CARN_DA_MODELS``) holds,
per model, ``NAME.pth`` (a state dict, loaded weights-only), ``NAME.yml`` (its ``network_g``) and ``NAME.md`` (its
model card: data, iterations, command, date, machine, scores), and one ``models.json``::

    {"default": "NAME", "adapt_source": "NAME2",
     "models": {"NAME": {"summary": "...", "sha256": "<of NAME.pth>", "scores": {...}}, "NAME2": {...}}}

Commands take ``--model NAME`` for a shipped model, ``--model FILE --opt OPTIONS.yml`` for any other, and, when
neither is given, the model of their role: ``default`` (what ``carn-da restore`` restores with: the routed model)
or ``adapt_source`` (what ``carn-da adapt`` adapts: the blind model). A shipped checkpoint whose SHA-256 differs
from its entry is refused.
"""
import hashlib
import json
import os
from dataclasses import dataclass, field
from os import path as osp

from carn_da.utils.errors import UserError
from carn_da.utils.files import save_torch_atomic, write_atomic, write_options

PACKAGE_FOLDER = osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'weights')
MANIFEST = 'models.json'
ROLES = ('default', 'adapt_source')  # the model a command uses when no --model is given


def models_folder():
    """The folder of shipped models: ``$CARN_DA_MODELS`` if set, else the package's ``weights`` folder."""
    return os.environ.get('CARN_DA_MODELS') or PACKAGE_FOLDER


@dataclass(frozen=True)
class ShippedModel:
    """One entry of ``models.json``: its files lie in ``folder`` as NAME.pth, NAME.yml and NAME.md."""
    name: str
    folder: str
    sha256: str
    summary: str = ''
    scores: dict = field(default_factory=dict)

    @property
    def checkpoint(self):
        return osp.join(self.folder, f'{self.name}.pth')

    @property
    def options(self):
        return osp.join(self.folder, f'{self.name}.yml')

    @property
    def card(self):
        return osp.join(self.folder, f'{self.name}.md')


def read_manifest(folder=None):
    """({role: name}, {name: ShippedModel}) of a models folder; ({}, {}) if it has no ``models.json``. UserError
    naming the file if it is not a manifest as the module describes."""
    folder = folder or models_folder()
    manifest = osp.join(folder, MANIFEST)
    if not osp.isfile(manifest):
        return {}, {}
    try:
        with open(manifest, encoding='utf-8') as f:
            data = json.load(f)
        models = {
            name: ShippedModel(name, folder, entry['sha256'], entry.get('summary', ''), entry.get('scores', {}))
            for name, entry in data['models'].items()
        }
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
        raise UserError(f'{manifest} is not a models manifest ({type(error).__name__}: {error}); expected '
                        '{"default": NAME, "models": {NAME: {"sha256": ...}}}.') from error
    roles = {role: data[role] for role in ROLES if data.get(role) is not None}
    for role, name in roles.items():
        if name not in models:
            raise UserError(f'{manifest}: its {role} model {name!r} is not among its models.')
    return roles, models


def sha256_of(path):
    """The SHA-256 of a file, in hex."""
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()


def verified(model):
    """``model`` (a ShippedModel) once its files exist and its checkpoint's SHA-256 is the manifest's; UserError
    otherwise (a damaged or replaced file)."""
    for path in (model.checkpoint, model.options):
        if not osp.isfile(path):
            raise UserError(f'Shipped model {model.name}: {path} is missing; reinstall carn-da.')
    found = sha256_of(model.checkpoint)
    if found != model.sha256:
        raise UserError(f'Shipped model {model.name}: {model.checkpoint} has SHA-256 {found}, not {model.sha256} as '
                        'models.json says: the file is damaged or was replaced; reinstall carn-da.')
    return model


def resolve_model(model, opt, role='default'):
    """(checkpoint, option file) of a command's ``--model`` and ``--opt``: a shipped model by name (``--opt`` not
    given), a checkpoint file with its option file, or, when both are None, the shipped model of ``role``. UserError
    naming the option when they do not fit or no shipped model is installed."""
    roles, shipped = read_manifest()
    if model is None:
        if opt is not None:
            raise UserError(f'--opt goes with --model CHECKPOINT; without --model the shipped {role} model is used, '
                            'which has its own options.')
        if role not in roles:
            raise UserError(f'No shipped {role} model is installed (none in {osp.join(models_folder(), MANIFEST)}): '
                            'give --model CHECKPOINT --opt OPTIONS.yml, or train the shipped models with '
                            'scripts/train_zoo.py.')
        model = roles[role]
    if model in shipped and not osp.isfile(model):
        if opt is not None:
            raise UserError(f'--model {model} is a shipped model, which has its own options: leave out --opt.')
        found = verified(shipped[model])
        return found.checkpoint, found.options
    if opt is None:
        names = ', '.join(shipped) or 'none installed'
        raise UserError(f'--model {model} is neither a shipped model ({names}; see carn-da models) nor given with its '
                        '--opt OPTIONS.yml.')
    return model, opt


def ship(folder, name, state_dict, network_g, card, summary, scores=None, roles=()):
    """Write a model into the models folder ``folder``: NAME.pth (``{'params': state_dict}``), NAME.yml
    (``network_g``), NAME.md (``card``) and its entry in ``models.json`` (its SHA-256), as the model of each of
    ``roles`` (``ROLES``). Each file is replaced atomically; returns its ShippedModel."""
    os.makedirs(folder, exist_ok=True)
    model = ShippedModel(name, folder, '', summary, scores or {})
    save_torch_atomic({'params': state_dict}, model.checkpoint)
    write_options({'network_g': network_g}, model.options)
    write_atomic(model.card, card.encode('utf-8'))
    manifest = osp.join(folder, MANIFEST)
    data = {'models': {}}
    if osp.isfile(manifest):
        with open(manifest, encoding='utf-8') as f:
            data = json.load(f)
    data['models'][name] = {'summary': summary, 'sha256': sha256_of(model.checkpoint), 'scores': scores or {}}
    data.update({role: name for role in roles})
    write_atomic(manifest, json.dumps(data, indent=1).encode('utf-8'))
    return read_manifest(folder)[1][name]
