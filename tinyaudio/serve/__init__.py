"""`tinyaudio serve`: the protocols device apps speak (Wyoming, OpenAI's HTTP API), one model."""
