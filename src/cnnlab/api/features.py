"""Feature models: ``Model(inputs=m.inputs, outputs=m.get_layer("conv2d").output)`` shares ``m``'s weights.

In Keras a layer object is its weights, so a model made of another model's layers computes with that
model's (trained) weights, and training either changes both. cnnlab's weights live in the torch module of
the model a layer belongs to; a model made of another's layers builds its module with that model's
torch blocks (the same ``nn.Module`` objects, not copies). ``predict`` on it gives the layer's
activations of the trained model, channels-last as Keras gives them, and fitting a new head on it
(transfer learning) trains the shared layers in place, as in Keras.
"""

from __future__ import annotations

from cnnlab.net.spec import SpecError


def shared_sources(model, objects: list) -> dict[str, tuple]:
    """For each of ``model``'s spec layers made from another model's layer object: ``(that model, its
    layer's name)``. ``objects`` are the graph's layer objects in spec order."""
    sources = {}
    for layer, item in zip(model.spec.layers, objects):
        owner = getattr(item, "model", None)
        if owner is not None and owner is not model:
            sources[layer.name] = (owner, item.name)  # a strong reference: the weights outlive a dropped name
    return sources


def share_blocks(model) -> None:
    """After ``model.module`` is built: each layer taken from another model runs that model's torch block
    (built there first where it is not yet); the module moves to the shared blocks' device."""
    sources = getattr(model, "_shared", None)
    if not sources:
        return
    module, fresh = model.module, True
    last = len(module.layer_names) - 1
    for index, name in enumerate(module.layer_names):
        if name not in sources:
            continue
        owner, owner_name = sources[name]
        source = owner._require_module()
        at = source.layer_names.index(owner_name)
        _check_same(module, index, source, at, name, owner)
        if (index == last and module.softmax_output) != (at == len(source.layer_names) - 1 and source.softmax_output):
            raise SpecError(f"layer '{name}' ends model '{owner.name}' in a softmax that cnnlab applies apart "
                            "from the layer; a model cannot share it as an inner layer (or end in it as an inner "
                            "one): end the new model at that layer, or before it")
        module.blocks[index] = source.blocks[at]
        fresh = fresh and source.fresh
    module.fresh = fresh  # trained weights are never re-initialised from data
    device = next((param.device for param in source.parameters()), None)
    if device is not None:
        module.to(device)


def _check_same(module, index: int, source, at: int, name: str, owner) -> None:
    """The layer has the same kind, fields and input shapes in both networks (so the same weights fit)."""
    mine, theirs = module.info.layers[index], source.info.layers[at]
    same_fields = {k: v for k, v in mine.layer.fields.items() if k != "trainable"} == \
                  {k: v for k, v in theirs.layer.fields.items() if k != "trainable"}
    if mine.layer.kind != theirs.layer.kind or not same_fields or mine.input_shapes != theirs.input_shapes:
        raise SpecError(f"layer '{name}': no longer the layer of model '{owner.name}' it was made from "
                        f"(its network changed since); make the new model again from model '{owner.name}'")
