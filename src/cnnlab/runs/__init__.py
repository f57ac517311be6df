"""Training runs on disk: a run directory per run, written as it goes, resumable exactly.

>>> from cnnlab import runs
>>> result = runs.train("mlp", "digits")             # doctest: +SKIP
>>> runs.evaluate(result.run_dir).accuracy           # doctest: +SKIP

``directory`` holds the files' layout; ``training`` trains and resumes;
``evaluation`` loads a finished run, evaluates it and classifies images with it.
"""

from cnnlab.runs.directory import RunError
from cnnlab.runs.evaluation import Evaluation, Prediction, evaluate, load_run, predict
from cnnlab.runs.training import RunResult, resume, train

__all__ = ["Evaluation", "Prediction", "RunError", "RunResult", "evaluate", "load_run", "predict", "resume",
           "train"]
