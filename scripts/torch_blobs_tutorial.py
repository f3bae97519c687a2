"""The blob tutorial's PyTorch code (tutorial 0) as one script, for timing it end to end.

Runs in an environment that has torch, scikit-learn and matplotlib (jaxdl's
own has no PyTorch):  PYTHON_WITH_TORCH scripts/torch_blobs_tutorial.py OUT_DIR
The tutorial's code cells in order (data, shapes, Classifier, BCELoss, the
1000-epoch loop, the loss and accuracy plot), verbatim but for two changes a
script needs: the Agg backend, and each figure saved to OUT_DIR instead of shown
(jaxdl's run saves its figures too). The "Don't execute" cells are left out.
"""

# ruff: noqa: E402, I001, UP008, UP032 (the tutorial's code, as written)
import sys
from pathlib import Path

import importlib.util

import matplotlib

if len(sys.argv) != 2:
    sys.exit("usage: PYTHON_WITH_TORCH scripts/torch_blobs_tutorial.py OUT_DIR")
if importlib.util.find_spec("torch") is None:
    sys.exit("torch_blobs_tutorial.py: needs PyTorch; run it with a Python that has it (jaxdl's environment has none)")
matplotlib.use("Agg")
out = Path(sys.argv[1])
out.mkdir(parents=True, exist_ok=True)

# Standard PyTorch import
import torch
import torch.nn as nn
import numpy as np
import random
import matplotlib.pyplot as plt
from sklearn.datasets import make_blobs


# Set seed
SEED = 2024
torch.backends.cudnn.deterministic = True
torch.backends.cudnn.benchmark = False
torch.manual_seed(SEED)
torch.cuda.manual_seed_all(SEED)
random.seed(SEED)
np.random.seed(SEED)

# Generate dataset
X, y = make_blobs(n_samples=1000, n_features=2, centers=2, cluster_std=3, random_state=1)
# Plot dataset
plt.scatter(x=X[:, 0], y=X[0:, 1], marker="o", c=y, s=25)
plt.savefig(out / "make_blobs.png")
plt.clf()

# Check shape of tensor
X = torch.Tensor(X)
y = torch.Tensor(y)
print("X shape:", X.shape)
print("y shape:", y.shape)


class Classifier(nn.Module):
    def __init__(self, hidden=4):
        super(Classifier, self).__init__()
        self.model = nn.Sequential(nn.Linear(2, 5), nn.Linear(5, 1), nn.Sigmoid())

    def forward(self, x):
        output = self.model(x)
        return output


criterion = nn.BCELoss()

n_epoch = 1000
lr = 0.0005
model = Classifier()
optimizer = torch.optim.SGD(model.parameters(), lr=lr)

loss_record = []
acc_record = []

for i in range(n_epoch):
    model.train()

    output_prob = model(X).squeeze()
    pred = (output_prob >= 0.5).float()

    # Calculate loss
    loss = criterion(output_prob, y)
    loss_record.append(loss.item())

    # Calculate accuracy
    correct = (pred == y).sum().item()
    acc = correct / len(pred) * 100
    acc_record.append(acc)

    # Backpropagation
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()

    if (i + 1) % 100 == 0:
        print("Epoch {} loss {:.4f} acc {:.2f}%".format(i + 1, loss, acc))

# Plot Loss
plt.subplot(1, 2, 1)
plt.plot(loss_record, label="Training Loss")
plt.title("Training Loss")
plt.xlabel("Epoch")
plt.ylabel("Loss")
plt.legend()

# Plot Accuracy
plt.subplot(1, 2, 2)
plt.plot(acc_record, label="Training Accuracy", color="orange")
plt.title("Training Accuracy")
plt.xlabel("Epoch")
plt.ylabel("Accuracy (%)")
plt.legend()

plt.tight_layout()
plt.savefig(out / "loss_acc.png")
