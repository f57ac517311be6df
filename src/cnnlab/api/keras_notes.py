"""One-line notes, each shown once per Python process, where cnnlab deliberately differs from Keras
in a way a Keras user would otherwise only find mid-notebook (see docs/keras-habits.md)."""

from __future__ import annotations

SHOWN: set[str] = set()  # the notes this process has shown: each says its piece once, not every fit

DEFAULT_RECIPE = ("fit's defaults are the experiment's recipe: 5 epochs, batch 32 and 20% held out for "
                  "validation (Keras': 1 epoch, no validation); give epochs= and validation_split= to choose")
STRATIFIED_SPLIT = ("validation_split holds out a seeded, stratified share of each class (Keras takes the last "
                    "images as given, before shuffling); fit(..., split_method='keras') gives Keras' rule")


def first_time_notes(epochs, validation_split, validation_data, options: dict, arrays: bool) -> list[str]:
    """The notes this fit's arguments call for that this process has not shown yet (marked shown now)."""
    wanted = []
    if epochs is None or (validation_split is None and validation_data is None and arrays):
        wanted.append(DEFAULT_RECIPE)
    if arrays and validation_data is None and validation_split != 0 and "split_method" not in options:
        wanted.append(STRATIFIED_SPLIT)
    fresh = [note for note in wanted if note not in SHOWN]
    SHOWN.update(fresh)
    return [f"cnnlab: note: {note}" for note in fresh]
