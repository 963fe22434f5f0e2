"""Voice channel: a Pipecat pipeline per viewer over a WebSocket (VAD → STT → the LiveRoom agent →
TTS), with barge-in, offline defaults (Silero, faster-whisper, espeak-ng) and a browser client.

Mounted by the server through ``voice.api.router``; see docs/voice.md.
"""
