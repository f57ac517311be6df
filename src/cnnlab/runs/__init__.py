"""Training runs on disk: a run directory per run, written as it goes, resumable exactly.

>>> from cnnlab import runs
>>> result = runs.train("mlp", "digits")             # doctest: +SKIP
>>> runs.evaluate(result.run_dir).accuracy           # doctest: +SKIP

``directory`` holds the files' layout; ``training`` trains and resumes;
``model_file`` reads a finished run or a model file (the one model loader); ``evaluation``
evaluates a run and classifies images with it.
"""

from cnnlab.runs.directory import RunError
from cnnlab.runs.evaluation import Evaluation, Prediction, evaluate, predict
from cnnlab.runs.model_file import load_run, read_model
from cnnlab.runs.training import RunResult, resume, train

__all__ = ["Evaluation", "Prediction", "RunError", "RunResult", "evaluate", "load_run", "predict", "read_model",
           "resume", "train"]
