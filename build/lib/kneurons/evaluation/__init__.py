"""Stage 5, evaluation: masks and the masked model's predictions on the test set."""
