"""Speed code the model calls but does not need to be read with: prepacked CPU decoder kernels."""
