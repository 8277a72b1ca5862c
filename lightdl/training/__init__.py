"""LightningModules (Classifier, Regressor, PerceptronTask, VAETask, GeneratorTask), callbacks
and plots."""

from lightdl.training.callbacks import PredictionWriter, RunArtifacts
from lightdl.training.classifier import Classifier
from lightdl.training.generator_task import GeneratorTask
from lightdl.training.losses import CLASSIFICATION_LOSSES, REGRESSION_LOSSES
from lightdl.training.perceptron_task import PerceptronTask
from lightdl.training.regressor import Regressor
from lightdl.training.vae_task import VAETask

__all__ = ["CLASSIFICATION_LOSSES", "Classifier", "GeneratorTask", "PerceptronTask", "REGRESSION_LOSSES",
           "PredictionWriter", "Regressor", "RunArtifacts", "VAETask"]
