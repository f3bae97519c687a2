"""The experiments' index: what `jaxdl list`, `--help-config` and `jaxdl reproduce` read without
importing an experiment (and so JAX).

Generated from the modules' ``Experiment`` declarations by ``python scripts/build_index.py``; do not edit.
A test regenerates it and compares.
"""

# name: (module, attribute, settings class in jaxdl.experiments.settings, description), in the tour's order
INDEX = {
    'blobs': ('jaxdl.experiments.blobs', 'EXPERIMENT', 'BlobsConfig', 'tutorial 0: 2-D blob classifier, full-batch SGD as one lax.scan, 64 seeds via vmap'),
    'autodiff-modes': ('jaxdl.experiments.autodiff_modes', 'EXPERIMENT', 'AutodiffModesConfig', 'tutorial 0: jacfwd vs jacrev over n, m = 1..1000 (time, FLOPs, memory); gradient by jvp vs vjp'),
    'forward-gradient': ('jaxdl.experiments.forward_gradient', 'EXPERIMENT', 'ForwardGradientConfig', 'Baydin et al. 2022: training by one jvp per step against backprop; unbiasedness, variance, cost'),
    'forward-learning': ('jaxdl.experiments.forward_learning', 'EXPERIMENT', 'ForwardLearningConfig', 'Ren et al. 2023: MNIST or CIFAR-10 MLP by backprop, local losses (LG-BP), weight- and activity-perturbed forward gradients, over seeds'),
    'scratch-mlp': ('jaxdl.experiments.scratch_mlp', 'EXPERIMENT', 'ScratchMLPConfig', 'tutorial 3: NumPy MLP with hand-written backprop vs the same in JAX, same init and batches'),
    'scalar-engine': ('jaxdl.experiments.scalar_engine', 'EXPERIMENT', 'ScalarEngineConfig', 'tutorial 4: MLP(784,[64,32,10]) in the scalar engine vs NumPy vs jax.jit, same updates; divergence reported'),
    'monte-carlo': ('jaxdl.experiments.monte_carlo', 'EXPERIMENT', 'MonteCarloConfig', 'tutorial 0: Monte Carlo unbiasedness and 1/sqrt(S) consistency, GAN loss, score vs pathwise gradients'),
    'minibatch-sgd': ('jaxdl.experiments.minibatch_sgd', 'EXPERIMENT', 'MinibatchSGDConfig', 'tutorial 0: minibatch gradients are unbiased, their variance falls like 1/B; SGD by batch size'),
    'optimizers': ('jaxdl.experiments.optimizers', 'EXPERIMENT', 'OptimizersConfig', 'tutorial 2: SGD, momentum, Nesterov, Adagrad, RMSProp, Adam, L-BFGS on a quadratic, Rosenbrock, a saddle; LR finder'),
    'activations': ('jaxdl.experiments.activations', 'EXPERIMENT', 'ActivationsConfig', 'tutorial 2: per-layer gradient norms of a 20-layer MLP for six activations, initialisations and batch norm'),
    'universal-approximation': ('jaxdl.experiments.universal_approximation', 'EXPERIMENT', 'UniversalApproximationConfig', 'tutorial 0: one hidden layer of N sigmoids fitting 1-D and 2-D functions; max error against N'),
    'regularization': ('jaxdl.experiments.regularization', 'EXPERIMENT', 'RegularizationConfig', 'tutorial 2: dropout, weight decay, early stopping, clipping on an over-fitting MLP; generalisation gaps'),
    'mnist-mlp': ('jaxdl.experiments.mnist_mlp', 'EXPERIMENT', 'MNISTMLPConfig', 'tutorial 4: MNIST 784-128-10, SGD 1e-2, 3 epochs on 4,096 images, early stopping'),
    'cifar10-mlp': ('jaxdl.experiments.cifar10', 'MLP_EXPERIMENT', 'MLPConfig', 'tutorial 1: CIFAR-10 MLP 3072-100-10, Adam 1e-3, 5 epochs'),
    'cifar10-cnn': ('jaxdl.experiments.cifar10', 'CNN_EXPERIMENT', 'CNNConfig', 'tutorial 1: CIFAR-10 CNN (4 conv + BN), 10 epochs; recipe=tutorial|improved'),
    'image-classifier': ('jaxdl.experiments.image_classifier', 'EXPERIMENT', 'ImageClassifierConfig', "tutorial 1's MLP or CNN on your own split/class/image folder (--data DIR)"),
    'curvature': ('jaxdl.experiments.curvature', 'EXPERIMENT', 'CurvatureConfig', 'Hessian of the CIFAR-10 MLP and CNN: Lanczos top eigenvalues, spectral density, loss slices, HVP cost in four orders'),
    'mnist-vae': ('jaxdl.experiments.mnist_vae', 'EXPERIMENT', 'VAEConfig', 'tutorial 2: MNIST VAE 784-400-20, Adam, batch 32, 10 epochs; recipe=improved|tutorial; conditional option'),
    'cifar10-speedrun': ('jaxdl.experiments.cifar10_speedrun', 'EXPERIMENT', 'SpeedrunConfig', "time to the tutorial's CNN accuracy on CIFAR-10: an airbench-style network and recipe"),
}
