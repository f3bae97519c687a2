"""The training engine: state, tasks, compiled steps and epochs, the fit loop, timing."""

from jaxdl.train.checkpoint import Checkpoints
from jaxdl.train.fit import EarlyStopping, EpochEnd, FitResult, Hook, fit
from jaxdl.train.full_batch import full_batch_scan
from jaxdl.train.replicas import init_replicas, injected, replica
from jaxdl.train.state import TrainState, init_state, raw_key
from jaxdl.train.steps import averages, make_epoch_fns, make_train_step, steps_per_epoch
from jaxdl.train.task import Task, classification_loss
from jaxdl.train.timing import compile_ahead, median_seconds, timed_call

__all__ = [
    "Checkpoints",
    "EarlyStopping",
    "EpochEnd",
    "FitResult",
    "Hook",
    "Task",
    "TrainState",
    "averages",
    "classification_loss",
    "compile_ahead",
    "fit",
    "full_batch_scan",
    "init_replicas",
    "init_state",
    "injected",
    "make_epoch_fns",
    "make_train_step",
    "median_seconds",
    "raw_key",
    "replica",
    "steps_per_epoch",
    "timed_call",
]
