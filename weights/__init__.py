"""Shipped model weights (safetensors), installed as package data."""
