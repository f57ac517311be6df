"""The usual PyTorch training loop, written the way tutorials and course notebooks write it.

A DataLoader over a TensorDataset (default NCHW layout, default collation), the
networks as nn.Sequential with PyTorch's default initialisation, Adam(lr=1e-3),
CrossEntropyLoss, a running loss read with ``.item()`` every step, and validation
through a DataLoader at the training batch size. This is the baseline cnnlab's
engine is measured against; it is deliberately not tuned.
"""

from __future__ import annotations

import time

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset


def baseline_mlp(input_shape, classes: int = 10) -> nn.Module:
    height, width, channels = input_shape
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(height * width * channels, 128), nn.ReLU(), nn.Dropout(0.2),
        nn.Linear(128, 256), nn.ReLU(), nn.Dropout(0.2),
        nn.Linear(256, 512), nn.ReLU(), nn.Dropout(0.2),
        nn.Linear(512, classes),
    )


def _block(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU(), nn.Conv2d(cout, cout, 3, padding=1), nn.ReLU(),
            nn.MaxPool2d(2, 2)]


def baseline_cnn(input_shape, classes: int = 10) -> nn.Module:
    height, width, channels = input_shape
    features = (height // 8) * (width // 8) * 128
    return nn.Sequential(
        *_block(channels, 32), *_block(32, 64), *_block(64, 128),
        nn.Flatten(), nn.Dropout(0.2), nn.Linear(features, 512), nn.ReLU(), nn.Dropout(0.5),
        nn.Linear(512, classes),
    )


class BaselineTrainer:
    """The usual loop, one epoch per call, so a benchmark can alternate it with another engine."""

    def __init__(self, model: nn.Module, x_train, y_train, x_val, y_val, batch_size: int = 32, seed: int = 0):
        torch.manual_seed(seed)
        self.model = model
        self.train_loader = DataLoader(TensorDataset(x_train, y_train), batch_size=batch_size, shuffle=True)
        self.val_loader = DataLoader(TensorDataset(x_val, y_val), batch_size=batch_size)
        self.optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        self.criterion = nn.CrossEntropyLoss()
        self.history: list[dict] = []

    def epoch(self) -> dict:
        model, optimizer, criterion = self.model, self.optimizer, self.criterion
        start = time.perf_counter()
        model.train()
        running_loss, correct, seen = 0.0, 0, 0
        for images, labels in self.train_loader:
            optimizer.zero_grad()
            outputs = model(images)
            loss = criterion(outputs, labels)
            loss.backward()
            optimizer.step()
            running_loss += loss.item() * labels.size(0)
            correct += (outputs.argmax(1) == labels).sum().item()
            seen += labels.size(0)
        train_time = time.perf_counter() - start
        val_loss, val_correct, val_seen = 0.0, 0, 0
        model.eval()
        with torch.no_grad():
            for images, labels in self.val_loader:
                outputs = model(images)
                val_loss += criterion(outputs, labels).item() * labels.size(0)
                val_correct += (outputs.argmax(1) == labels).sum().item()
                val_seen += labels.size(0)
        record = {"epoch": len(self.history) + 1, "loss": running_loss / seen, "accuracy": correct / seen,
                  "val_loss": val_loss / val_seen, "val_accuracy": val_correct / val_seen,
                  "time": time.perf_counter() - start, "train_time": train_time}
        self.history.append(record)
        return record
