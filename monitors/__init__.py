"""Static analysis that steers decoding: token vocabulary index, syntax helpers, monitors.

Monitors see text, offsets and a token vocabulary -- never the model.
"""
