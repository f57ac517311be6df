"""ONNX: the network with its softmax, exported by torch.onnx and checked with onnxruntime.

The exporter is torch.onnx's ``dynamo=True`` one (torch.export, then onnxscript's
translation), which runs offline; the legacy TorchScript exporter is not used. The
graph takes ``images``, float32 ``(batch, C, H, W)`` in [0, 1] (uint8 pixels divided
by 255, channels first) or ``(batch, D)`` for a flat input, and returns
``probabilities`` ``(batch, classes)``; the batch axis is dynamic. Before the file is
written, onnxruntime runs it on random images of the input shape, at two batch sizes,
and its probabilities must be within :data:`TOLERANCE` of cnnlab's own.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import json
import logging
import warnings

import numpy as np
import torch

from cnnlab.export.network import ExportError, Network, check_agreement, reason, reference_probabilities, sample_images

TOLERANCE = 1e-5     # max |difference| of any class probability, onnxruntime vs cnnlab
OPSET = 18           # onnxruntime has run opset 18 since 1.14; newer runtimes run it too
MAX_PROTO_BYTES = 2**31 - 1  # protobuf's limit for one file; cnnlab's networks are far below it
INPUT_NAME, OUTPUT_NAME = "images", "probabilities"


def _require(package: str):
    try:
        return importlib.import_module(package)
    except ImportError:
        raise ExportError(f"--to onnx needs the package '{package}': pip install 'cnnlab[onnx]'") from None


class _Probabilities(torch.nn.Module):
    """cnnlab's module with its final softmax: forward() returns what ``predict`` does."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model.probabilities(images)


@contextlib.contextmanager
def _quiet():
    """The exporter's chatter (missing torchvision ops, deprecations) is not the user's business."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def export_onnx(network: Network) -> tuple[bytes, dict]:
    """The ONNX file's bytes and what was checked (exporter, opset, samples, max difference)."""
    onnx = _require("onnx")
    _require("onnxscript")  # torch.onnx's dynamo exporter translates through it
    ort = _require("onnxruntime")
    proto = _exported(network)
    _describe(onnx, proto, network)
    try:
        onnx.checker.check_model(proto)
    except onnx.checker.ValidationError as exc:
        raise ExportError(f"the ONNX export of '{network.name}' is not a valid model ({reason(exc)})") from None
    data = proto.SerializeToString()
    if len(data) > MAX_PROTO_BYTES:
        raise ExportError(f"'{network.name}' is over 2 GB as ONNX; cnnlab writes single-file models only")
    return data, _verify(ort, data, network)


def _exported(network: Network):
    """The ONNX ModelProto from torch.onnx's dynamo exporter, with a dynamic batch axis."""
    if "dynamo" not in inspect.signature(torch.onnx.export).parameters:
        raise ExportError(f"--to onnx needs torch >= 2.5 (its dynamo exporter); this is torch {torch.__version__}")
    example = torch.from_numpy(sample_images(network, 2))  # batch 2: a batch of 1 would be fixed as 1
    try:
        with _quiet(), torch.no_grad():
            program = torch.onnx.export(_Probabilities(network.model).eval(), (example,), dynamo=True,
                                        opset_version=OPSET, input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                                        dynamic_shapes=({0: torch.export.Dim("batch")},), verbose=False)
    except Exception as exc:  # the exporter's errors have no stable type; the cause is the network
        raise ExportError(f"torch.onnx could not export '{network.name}' ({reason(exc)})") from None
    return program.model_proto


def _describe(onnx, proto, network: Network) -> None:
    """Metadata a user of the file needs: the input's layout and scaling, the classes, the origin."""
    layout = "(batch, C, H, W)" if len(network.input_shape) == 3 else "(batch, D)"
    props = {"cnnlab.input": f"float32 {layout} in [0, 1]: uint8 pixels divided by 255, channels first",
             "cnnlab.output": "class probabilities (the softmax is included)",
             "cnnlab.origin": network.origin, "cnnlab.trained": str(network.trained).lower()}
    if network.class_names:
        props["cnnlab.classes"] = json.dumps(network.class_names)
    onnx.helper.set_model_props(proto, props)
    proto.doc_string = f"{network.name}: {props['cnnlab.input']}; output {props['cnnlab.output']}"


def _verify(ort, data: bytes, network: Network) -> dict:
    """Run the model with onnxruntime at two batch sizes; compare with cnnlab's probabilities."""
    try:
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1  # a few small images: one thread, nothing spinning idle
        session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types
        raise ExportError(f"onnxruntime cannot load the exported '{network.name}' ({reason(exc)})") from None
    images = sample_images(network)
    worst = 0.0
    for batch in (images, images[:1]):  # the batch axis must really be dynamic
        got = session.run([OUTPUT_NAME], {INPUT_NAME: batch})[0]
        expected = reference_probabilities(network, batch)
        worst = max(worst, check_agreement("onnxruntime", np.asarray(got), expected, TOLERANCE))
    onnxscript = importlib.import_module("onnxscript")
    return {"exporter": f"torch.onnx dynamo=True (torch {torch.__version__}, onnxscript {onnxscript.__version__})",
            "opset": OPSET, "input": "(batch, " + ", ".join(map(str, network.torch_input_shape)) + ")",
            "runtime": f"onnxruntime {ort.__version__}", "samples": len(images), "max_diff": worst,
            "tolerance": TOLERANCE}
