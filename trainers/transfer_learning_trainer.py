"""TransferLearningTrainer: ModelTrainer for torchvision's DeepLabV3 models with a pretrained backbone.

It changes only what transfer learning changes: the backbone learns
at backbone_lr_factor times the new head's rate (below 1 for a pretrained backbone, so the first large
updates of a randomly initialised head do not wreck features learnt on ImageNet; 1 from scratch); and
the backbone can stay frozen for the first freeze_backbone_epochs epochs while the head settles.
"""

from trainers.model_trainer import ModelTrainer


class TransferLearningTrainer(ModelTrainer):
    """For models with `.backbone` and `.classifier` (models.deeplabv3.DeepLabV3Logits)."""

    backbone_frozen = False

    def parameter_groups(self) -> list[dict]:
        """The head first (its rate is the one the history reports), then the backbone at a lower rate."""
        backbone_ids = {id(parameter) for parameter in self.model.backbone.parameters()}
        head = [parameter for parameter in self.model.parameters() if id(parameter) not in backbone_ids]
        return [
            {"name": "head", "params": head, "lr": self.options.learning_rate},
            {
                "name": "backbone",
                "params": list(self.model.backbone.parameters()),
                "lr": self.options.learning_rate * self.options.backbone_lr_factor,
            },
        ]

    def prepare_epoch(self, epoch: int) -> None:
        frozen = epoch <= self.options.freeze_backbone_epochs
        if frozen != self.backbone_frozen:
            self.backbone_frozen = frozen
            # Frozen parameters get no gradient, so Adam leaves them (and their moments) untouched.
            self.model.backbone.requires_grad_(not frozen)
            self.log(f"{self.model_name}: backbone {'frozen' if frozen else 'trainable'} from epoch {epoch}")

    def set_training_mode(self) -> None:
        super().set_training_mode()
        if self.backbone_frozen:
            # A frozen backbone keeps its BatchNorm statistics too, as it would at inference.
            self.model.backbone.eval()
