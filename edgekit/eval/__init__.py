"""How good a model is: datasets and mAP."""
