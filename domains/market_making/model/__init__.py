"""The model setting of market making: an Avellaneda–Stoikov market with optional mis-specifications."""
