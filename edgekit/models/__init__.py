"""What a model is: torch definitions of the families and safe checkpoint loaders (imports torch)."""
