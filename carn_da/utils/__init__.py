"""The runtime layer beneath the commands, one role per module: errors, devices, checkpoints, files (atomic writes,
option files), images, inference, scores, training logs, JPEG coding and the commands' shared arguments."""
