"""Export side: loads tiny-audio checkpoints with torch + transformers (never their remote code)."""
