"""ExpertLab engine: fine-tuning vs retrieval vs both, measured on the user's own data.

Layers, highest first (a module imports only from lower ones):
ui, cli > arena > generation, jobs, training, rag > models, data > metrics, config, workspace, db.
Only lab/ui imports gradio; heavy libraries are imported inside the functions that need them.
"""

__version__ = "0.1.0"
