"""The IDM-VTON engine: checkpoint loading, the try-on pipeline, the tiny-model maker."""
