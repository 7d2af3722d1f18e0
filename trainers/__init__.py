"""Training loops and the metrics they report."""

from models import MODEL_REGISTRY
from trainers.model_trainer import ModelTrainer
from trainers.options import TrainingOptions
from trainers.transfer_learning_trainer import TransferLearningTrainer

__all__ = ["ModelTrainer", "TrainingOptions", "TransferLearningTrainer", "trainer_class_for"]


def trainer_class_for(model_name: str) -> type[ModelTrainer]:
    """TransferLearningTrainer for the registry's transfer-learning models, ModelTrainer for the others."""
    return TransferLearningTrainer if MODEL_REGISTRY[model_name].transfer_learning else ModelTrainer
