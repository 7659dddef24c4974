"""The demo model: espeak-ng data (data.py), three-stage training (train.py); see README.md."""
