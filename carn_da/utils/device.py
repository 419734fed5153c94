"""Where and in which precision the commands run their networks."""
import torch

from carn_da.utils.errors import UserError

HALF_DTYPES = {'cuda': torch.float16, 'cpu': torch.bfloat16}


def choose_device(name):
    """The torch device of a ``--device`` choice: 'auto' (CUDA if present), 'cpu' or 'cuda'."""
    if name == 'auto':
        return torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    if name == 'cuda' and not torch.cuda.is_available():
        raise UserError('--device cuda, but torch sees no CUDA device.')
    return torch.device(name)


def choose_dtype(half, device):
    """float32, or with ``half`` the half precision of ``device``: float16 on CUDA, bfloat16 on CPU."""
    return HALF_DTYPES[device.type] if half else torch.float32
