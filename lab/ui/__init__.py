"""Gradio user interface: one module per tab plus the app assembly. The only package that imports gradio."""
