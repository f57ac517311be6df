"""The experiment: train networks side by side on one dataset, test them, and analyse the difference.

``comparison`` runs it (resumably); ``analysis`` measures each trained run;
``results`` holds what they find, as dataclasses the report and comparison.json read.
"""

from cnnlab.experiment.comparison import compare
from cnnlab.experiment.results import Comparison, DatasetFacts, DeepAnalysis, ModelResult, RunOutcome, Stat

__all__ = ["Comparison", "DatasetFacts", "DeepAnalysis", "ModelResult", "RunOutcome", "Stat", "compare"]
