"""The VAE tutorial's PyTorch code (tutorial 2), trained for real on the shared MNIST copy.

Gives the reference figure ``mnist-vae`` is compared with: the tutorial's own
network, loss (BCE summed + analytic KL), Adam 1e-3, batch 32, shuffled, 10
epochs; test loss per image with one sampled z, as the tutorial computes it.
Runs in an environment with torch (jaxdl's has none), from MNIST written as
uint8 arrays by jaxdl:

    python -c "import numpy as np; from jaxdl import data; \\
        np.savez('mnist.npz', **{s: data.load('mnist', s).inputs for s in ('train', 'test')})"
    PYTHON_WITH_TORCH scripts/torch_vae_reference.py mnist.npz [--seeds 0 1 2] [--threads 1]

Prints one JSON line per seed: the train and test loss per image after each epoch.
"""

import argparse
import json
import sys
import time

import numpy as np

try:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
    from torch.utils.data import DataLoader, TensorDataset
except ModuleNotFoundError:
    sys.exit("torch_vae_reference.py: needs PyTorch; run it with a Python that has it (jaxdl's environment has none)")


class VAE(nn.Module):  # the tutorial's module, verbatim but for comments
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(784, 400)
        self.fc21 = nn.Linear(400, 20)
        self.fc22 = nn.Linear(400, 20)
        self.fc3 = nn.Linear(20, 400)
        self.fc4 = nn.Linear(400, 784)

    def encode(self, x):
        h1 = F.relu(self.fc1(x))
        return self.fc21(h1), self.fc22(h1)

    def reparameterize(self, mu, logvar):
        std = torch.exp(0.5 * logvar)
        return mu + torch.randn_like(std) * std

    def decode(self, z):
        return torch.sigmoid(self.fc4(F.relu(self.fc3(z))))

    def forward(self, x):
        mu, logvar = self.encode(x.view(-1, 784))
        return self.decode(self.reparameterize(mu, logvar)), mu, logvar


reconst_loss = nn.BCELoss(reduction="sum")


def loss_function(recon_x, x, mu, logvar):
    return reconst_loss(recon_x, x.view(-1, 784)) - 0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())


def images(array: np.ndarray) -> TensorDataset:
    return TensorDataset(torch.tensor(array, dtype=torch.float32).reshape(-1, 1, 28, 28) / 255)  # ToTensor()


def train(seed: int, train_set: TensorDataset, test_set: TensorDataset, epochs: int) -> dict:
    torch.manual_seed(seed)
    train_loader = DataLoader(train_set, batch_size=32, shuffle=True)
    test_loader = DataLoader(test_set, batch_size=32, shuffle=False)
    model = VAE()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    history = []
    for epoch in range(epochs):
        start = time.perf_counter()
        model.train()
        train_loss = 0.0
        for (x,) in train_loader:
            optimizer.zero_grad()
            recon_batch, mu, logvar = model(x)
            loss = loss_function(recon_batch, x, mu, logvar)
            loss.backward()
            optimizer.step()
            train_loss += loss.item()
        seconds = time.perf_counter() - start
        model.eval()
        test_loss = 0.0
        with torch.no_grad():
            for (x,) in test_loader:
                recon_batch, mu, logvar = model(x)
                test_loss += loss_function(recon_batch, x, mu, logvar).item()
        history.append({
            "epoch": epoch + 1, "train_loss": train_loss / len(train_set), "test_loss": test_loss / len(test_set),
            "train_seconds": seconds,
        })  # fmt: skip
    return {"seed": seed, "test_loss": history[-1]["test_loss"], "history": history}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("npz", help="MNIST as uint8 arrays 'train' and 'test' (N, 28, 28[, 1])")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    with np.load(args.npz) as arrays:
        train_set, test_set = images(arrays["train"]), images(arrays["test"])
    for seed in args.seeds:
        print(json.dumps({"torch": torch.__version__, **train(seed, train_set, test_set, args.epochs)}), flush=True)


if __name__ == "__main__":
    main()
