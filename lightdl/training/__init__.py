"""LightningModules (Classifier, Regressor, PerceptronTask, VAETask, GeneratorTask), callbacks
(run artifacts, L1Penalty, GradientNorms, ActivationStats), plots, and load_task /
load_datamodule to use a trained run from Python."""

from lightdl.training.activation_stats import ActivationStats
from lightdl.training.callbacks import PredictionWriter, RunArtifacts
from lightdl.training.checkpoints import load_datamodule, load_task
from lightdl.training.classifier import Classifier
from lightdl.training.generator_task import GeneratorTask
from lightdl.training.gradient_norms import GradientNorms
from lightdl.training.losses import CLASSIFICATION_LOSSES, REGRESSION_LOSSES
from lightdl.training.perceptron_task import PerceptronTask
from lightdl.training.regressor import Regressor
from lightdl.training.regularization import L1Penalty
from lightdl.training.vae_task import VAETask

__all__ = ["ActivationStats", "CLASSIFICATION_LOSSES", "Classifier", "GeneratorTask",
           "GradientNorms", "L1Penalty", "PerceptronTask", "PredictionWriter", "REGRESSION_LOSSES", "Regressor",
           "RunArtifacts", "VAETask", "load_datamodule", "load_task"]
