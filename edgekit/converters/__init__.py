"""How a model becomes an artifact: deploy transforms, exporters, quantization, verification (imports torch)."""
