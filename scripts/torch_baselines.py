"""The tutorials' PyTorch networks and training steps, timed, for side-by-side comparison.

Runs in an environment with torch (jaxdl's has none):
    PYTHON_WITH_TORCH scripts/torch_baselines.py [--steps 30] [--threads 2]
Times the training step of each tutorial network on random data of the
tutorial's shapes and batch size (data loading excluded, as in jaxdl's
benchmark) and prints one JSON line per model: examples/s and s per epoch.
"""

import argparse
import json
import statistics
import sys
import time

try:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except ModuleNotFoundError:
    sys.exit("torch_baselines.py: needs PyTorch; run it with a Python that has it (jaxdl's environment has none)")


class MLP(nn.Module):  # tutorial 1
    def __init__(self):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(3072, 100), nn.Linear(100, 10)

    def forward(self, x):
        return self.fc2(F.relu(self.fc1(x.reshape(-1, 3072))))


class CNN(nn.Module):  # tutorial 1, verbatim structure
    def __init__(self):
        super().__init__()
        layers = []
        for cin, cout, stride in ((3, 32, 1), (32, 32, 2), (32, 64, 1), (64, 64, 2)):
            layers += [nn.Conv2d(cin, cout, 3, stride, 1), nn.BatchNorm2d(cout), nn.LeakyReLU()]
        self.features = nn.Sequential(*layers, nn.Flatten())
        self.head = nn.Sequential(
            nn.Linear(4096, 128), nn.BatchNorm1d(128), nn.LeakyReLU(), nn.Dropout(0.5), nn.Linear(128, 10)
        )

    def forward(self, x):
        return self.head(self.features(x))


class VAE(nn.Module):  # tutorial 2
    def __init__(self):
        super().__init__()
        self.fc1, self.fc21, self.fc22 = nn.Linear(784, 400), nn.Linear(400, 20), nn.Linear(400, 20)
        self.fc3, self.fc4 = nn.Linear(20, 400), nn.Linear(400, 784)

    def forward(self, x):
        h = F.relu(self.fc1(x.view(-1, 784)))
        mu, logvar = self.fc21(h), self.fc22(h)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        return torch.sigmoid(self.fc4(F.relu(self.fc3(z)))), mu, logvar


def vae_loss(out, x):
    recon, mu, logvar = out
    bce = F.binary_cross_entropy(recon, x.view(-1, 784), reduction="sum")
    return bce - 0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())


class SmallMLP(nn.Module):  # tutorial 4
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 10))

    def forward(self, x):
        return self.net(x)


WORKLOADS = {
    # name: (model, input shape, batch, optimizer, loss, examples per epoch)
    "cifar10-mlp": (MLP, (3, 32, 32), 100, lambda p: torch.optim.Adam(p, 1e-3), "ce", 50000),
    "cifar10-cnn": (CNN, (3, 32, 32), 100, lambda p: torch.optim.Adam(p, 1e-3), "ce", 50000),
    "mnist-vae": (VAE, (1, 28, 28), 32, lambda p: torch.optim.Adam(p, 1e-3), "vae", 60000),
    "mnist-mlp": (SmallMLP, (1, 28, 28), 64, lambda p: torch.optim.SGD(p, 1e-2), "ce", 4096),
}


def time_workload(name, steps, repeats):
    model_cls, shape, batch, make_opt, loss_kind, per_epoch = WORKLOADS[name]
    torch.manual_seed(0)
    model = model_cls()
    model.train()
    opt = make_opt(model.parameters())
    x = torch.rand(steps, batch, *shape)
    y = torch.randint(0, 10, (steps, batch))

    def run():
        start = time.perf_counter()
        for i in range(steps):
            out = model(x[i])
            loss = vae_loss(out, x[i]) if loss_kind == "vae" else F.cross_entropy(out, y[i])
            opt.zero_grad()
            loss.backward()
            opt.step()
        return time.perf_counter() - start

    run()  # warm-up
    seconds = statistics.median(run() for _ in range(repeats))
    examples_per_second = steps * batch / seconds
    return {
        "model": name,
        "examples_per_second": examples_per_second,
        "seconds_per_epoch": per_epoch / examples_per_second,
        "framework": f"torch {torch.__version__}",
        "threads": torch.get_num_threads(),
    }


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--only", nargs="*", default=list(WORKLOADS))
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    for name in args.only:
        print(json.dumps(time_workload(name, args.steps, args.repeats)), flush=True)


if __name__ == "__main__":
    main()
