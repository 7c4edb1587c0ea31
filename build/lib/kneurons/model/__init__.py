"""Stage 2, model: model specs, checkpoints, the ESM-2 classifier, fine-tuning and prediction."""
