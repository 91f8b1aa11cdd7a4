"""Streaming output: GOP-aligned segments, a rate-controlled quality ladder, HLS playlists."""
