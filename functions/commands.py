"""Imports every area's command-line commands so ``functions.cli`` registers them."""
