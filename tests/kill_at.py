"""An engine callback that SIGKILLs its own process mid-epoch: what a crash or `kill -9` leaves behind.

Imported by the training scripts the resume tests run in subprocesses (their PYTHONPATH holds tests/).
"""

import os
import signal

from cnnlab.engine.callbacks import TrainingCallback


class KillAt(TrainingCallback):
    """Kill this process at (epoch, step) or after it; every other hook does nothing."""

    def __init__(self, epoch: int, step: int):
        self.epoch, self.step, self.current = epoch, step, 0

    def on_epoch_begin(self, epoch, epochs, steps):
        self.current = epoch

    def on_progress(self, step, steps, loss, accuracy):
        if (self.current, step) >= (self.epoch, self.step):
            os.kill(os.getpid(), signal.SIGKILL)  # a real kill, mid-epoch
