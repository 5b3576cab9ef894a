"""ExpertLab: launch the Gradio app on the workspace named by LAB_HOME (default ./workspace).

The sample domain (dataset and document corpus) is installed into the workspace on first launch and the
embedded model is converted once into the model cache, so the first page shows a working lab. The sample
retrieval index is built in the background after launch (the Arena's `rag:sample` waits for it if asked first).
"""

import threading

from lab.data import ensure_sample_domain
from lab.models import ModelCache
from lab.rag import ensure_sample_index
from lab.ui.app import build_app, launch
from lab.workspace import Workspace

ws = Workspace.from_env()
ensure_sample_domain(ws)
cache = ModelCache(ws.model_cache)
demo = build_app(ws, cache)

if __name__ == "__main__":
    cache.resolve("embedded")  # convert the embedded model once, before the first request needs it
    threading.Thread(target=ensure_sample_index, args=(ws, cache), name="sample-index", daemon=True).start()
    launch(demo, ws)
