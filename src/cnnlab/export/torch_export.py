"""PyTorch: a standalone Python file defining the network as an ``nn.Module``, and its weights.

The file imports only torch (and safetensors to load weights). Its module holds the
layers in ``self.blocks``, in the spec's order and with cnnlab's parameter names, so
the weights file (cnnlab's own state dict, as safetensors) loads with ``strict=True``;
``forward`` follows the spec's ``inputs`` for graphs. Before anything is written the
source is run, the weights are loaded into it strictly, and its probabilities on
random images must be within :data:`TOLERANCE` of cnnlab's.
"""

from __future__ import annotations

from pathlib import Path

import torch

from cnnlab.export.codegen import WRITTEN_BY, class_name, comment_text, literal, module_from_source, variable_names
from cnnlab.export.network import ExportError, Network, check_agreement, reason, reference_probabilities, sample_images
from cnnlab.export.torch_layers import helpers_of, helpers_used, module_code
from cnnlab.net.registry import shape_text
from cnnlab.net.spec import INPUT

TOLERANCE = 1e-5  # max |difference| of a class probability, generated module vs cnnlab
RESERVED = {"self", "x", "blocks", "torch", "nn", "F", "sys", "Path"}

_MAIN = '''

def load(path=WEIGHTS):
    """The network with the weights in ``path`` (a safetensors file, as cnnlab wrote it), in eval mode."""
    from safetensors.torch import load_file

    model = {cls}()
    model.load_state_dict(load_file(str(path)), strict=True)
    return model.eval()


if __name__ == "__main__":
    model = load(sys.argv[1] if len(sys.argv) > 1 else WEIGHTS)
    parameters = sum(p.numel() for p in model.parameters())
    statistics = sum(b.numel() for name, b in model.named_buffers() if name.endswith(("running_mean", "running_var")))
    print(f"{{type(model).__name__}}: {{parameters:,}} parameters", end="")
    print(f" + {{statistics:,}} batchnorm statistics ({{parameters + statistics:,}}, as Keras counts)"
          if statistics else "")
'''


def export_pytorch(network: Network, path: Path, weights: Path) -> tuple[str, bytes, dict]:
    """The source of ``path``, the weights file's bytes and what was checked."""
    from safetensors.torch import save

    state = {key: value.detach().cpu().contiguous() for key, value in network.model.state_dict().items()}
    cls = _class_name(network)
    source = _source(network, cls, path.name, weights.name)
    checks = _verify(network, source, path, cls, state)
    return source, save(state, metadata={"format": "pt"}), checks


def _class_name(network: Network) -> str:
    name = class_name(network.name)
    return f"{name}Network" if name in helpers_of(network.info.layers) else name  # not a helper's name


def _source(network: Network, cls: str, file_name: str, weights_name: str) -> str:
    info = network.info
    blocks = []
    for index, layer_info in enumerate(info.layers):
        layer = layer_info.layer
        code = module_code(layer_info, strip_softmax=index == len(info.layers) - 1 and network.model.softmax_output)
        note = comment_text(f"{index} {layer.name} ({layer.keras_class}) -> {shape_text(layer_info.output_shape)}")
        blocks.append(f"            {code},  # {note}")
    helpers = helpers_used("\n".join(blocks), helpers_of(info.layers))
    parts = [_header(network, file_name, weights_name), *helpers, _class(network, cls, blocks)]
    return "\n\n\n".join(parts) + "\n" + _MAIN.format(cls=cls)


def _header(network: Network, file_name: str, weights_name: str) -> str:
    shape = network.torch_input_shape
    layout = "(N, C, H, W), channels first" if len(shape) == 3 else "(N, D)"
    return f'''"""{comment_text(network.name)} ({comment_text(network.origin)}) as a standalone PyTorch module.

{WRITTEN_BY}
Keras' semantics are written out: TensorFlow's 'same' padding (the extra pixel after),
flatten in channels-last order, Keras' batchnorm epsilon and momentum.
Input: float32 {layout} {literal(shape)} per image, in [0, 1]: uint8 pixels divided by 255
(images stored (N, H, W, C) are permuted with x.permute(0, 3, 1, 2)).
Weights: {comment_text(weights_name)} beside this file (safetensors); load() reads them.

    python {comment_text(file_name)} [WEIGHTS]   # builds the network, loads the weights, prints the parameter count
"""

import sys
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

CLASS_NAMES = {literal(network.class_names) if network.class_names else None}
INPUT_SHAPE = {literal(shape)}
WEIGHTS = Path(__file__).with_name({literal(weights_name)})'''


def _class(network: Network, cls: str, blocks: list[str]) -> str:
    softmax = network.model.softmax_output
    probabilities = ("torch.softmax(self(x), dim=1)" if softmax else "self(x)  # the last layer has no softmax")
    return f'''class {cls}(nn.Module):
    """The network; ``blocks[i]`` is the spec's layer i (cnnlab's parameter names)."""

    def __init__(self):
        super().__init__()
        self.blocks = nn.ModuleList([
{chr(10).join(blocks)}
        ])

    def forward(self, x):
        """Logits{" (the last layer's softmax is left to the loss, as cnnlab trains)" if softmax else ""}."""
{_forward(network)}

    def probabilities(self, x):
        """Class probabilities, as Keras' predict() returns them."""
        return {probabilities}'''


def _forward(network: Network) -> str:
    spec = network.model.spec
    if spec.is_chain:
        return "        for block in self.blocks:\n            x = block(x)\n        return x"
    names = variable_names(spec, RESERVED)
    names[INPUT] = "x"
    lines = ["        blocks = self.blocks"]
    for index, layer in enumerate(spec.layers):
        args = ", ".join(names[source] for source in layer.inputs)
        lines.append(f"        {names[layer.name]} = blocks[{index}]({args})")
    lines.append(f"        return {names[spec.layers[-1].name]}")
    return "\n".join(lines)


def _verify(network: Network, source: str, path: Path, cls: str, state: dict) -> dict:
    """Run the source, load the weights strictly, compare predictions with cnnlab's."""
    images = sample_images(network)
    try:
        model = getattr(module_from_source(source, path), cls)()
        model.load_state_dict(state, strict=True)
        with torch.no_grad():
            got = model.eval().probabilities(torch.from_numpy(images)).numpy()
    except Exception as exc:  # a bug of the generator: say so rather than write a broken file
        raise ExportError(f"{path}: the generated module fails ({reason(exc)}); not written") from None
    worst = check_agreement(f"{path}", got, reference_probabilities(network, images), TOLERANCE)
    return {"runtime": f"torch {torch.__version__}, strict state-dict load", "samples": len(images),
            "max_diff": worst, "tolerance": TOLERANCE}
