"""Live transcription: microphone or replayed file → voice activity → utterances → text."""
