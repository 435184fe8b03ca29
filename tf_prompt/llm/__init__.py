"""Calling a model: client (cache, budget, rate limits, retries), prices, local model presets."""
