"""What differs between a comparison's recorded options and a new command's, named as the command line spells it."""

from __future__ import annotations

from cnnlab.net.fields import shown

# options.json's keys as the command line spells them (the Python API's names are the keys themselves)
OPTION_NAMES = {"specs": "SPEC", "base_seed": "--seed", "seeds": "--seeds", "dataset": "--dataset",
                "train.val_split": "--val-split", "dataset_options.cache": "--cache-dir",
                "dataset_options.allow_download": "--no-download", "train.eval_batch_size": "eval_batch_size"}


def changed_options(before, now, prefix: str = "") -> list[str]:
    """Each option that differs between two options records, named, with both values.

    ``"--lr (train.lr): 0.001 before, 0.01 now"``; a record that is not a mapping at all
    is one change.
    """
    if not (isinstance(before, dict) and isinstance(now, dict)):
        return [] if before == now else [_change(prefix or "options", before, now)]
    changes = []
    for key in [*before, *(key for key in now if key not in before)]:
        path = f"{prefix}.{key}" if prefix else str(key)
        old, new = before.get(key), now.get(key)
        if isinstance(old, dict) and isinstance(new, dict):
            changes += changed_options(old, new, path)
        elif old != new:
            changes.append(_change(path, old, new))
    return changes


def _change(path: str, old, new) -> str:
    option = OPTION_NAMES.get(path) or "--" + path.rsplit(".", 1)[-1].replace("_", "-")
    return f"{option} ({path}): {_value(old)} before, {_value(new)} now"


def _value(value) -> str:
    return "not given" if value is None else shown(value)
