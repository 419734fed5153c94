import torch
from basicsr.models.sr_model import SRModel
from basicsr.utils.registry import MODEL_REGISTRY
from torch.nn.parallel import DataParallel, DistributedDataParallel


@MODEL_REGISTRY.register()
class CARNModel(SRModel):
    """Supervised training of a CARN on (JPEG, ground truth) pairs: BasicSR's SRModel, also on CPU under DDP.

    basicsr 1.4.2 wraps networks in DistributedDataParallel with ``device_ids=[torch.cuda.current_device()]``,
    which fails in a CPU (gloo) process group; here CPU networks are wrapped without device ids.
    """

    def model_to_device(self, net):
        net = net.to(self.device)
        if self.opt['dist']:
            device_ids = [torch.cuda.current_device()] if self.device.type == 'cuda' else None
            net = DistributedDataParallel(
                net, device_ids=device_ids, find_unused_parameters=self.opt.get('find_unused_parameters', False))
        elif self.opt['num_gpu'] > 1:
            net = DataParallel(net)
        return net
