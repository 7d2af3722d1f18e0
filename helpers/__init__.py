"""What the pipeline's steps share: atomic writes, one-line user errors, devices and precision, reading
images, figures, checkpoints and the dataset download."""
