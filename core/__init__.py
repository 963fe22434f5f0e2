"""The ground layer: what every other package may use (settings, ids, the error root, clocks,
time parsing, the cross-process directory lock, model provisioning). It imports nothing of ours."""
