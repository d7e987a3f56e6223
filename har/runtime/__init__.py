"""The model at run time: the compiled TensorFlow function and BentoML's model store."""
