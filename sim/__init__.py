"""Demo and load support: audience and show simulators, synthetic images. Never imported by the runtime packages."""
