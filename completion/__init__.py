"""The completion engine: prompts, the llama.cpp backend, the decode loop, stop rules."""
