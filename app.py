"""Open the interview assistant: ``python app.py`` (or ``make run``).

Builds the index of the corpus on first run (progress on the console), then serves the app on
http://127.0.0.1:7860. Options: ``--host``, ``--port``, ``--corpus DIR``, ``--index-dir DIR``,
``--export-dir DIR``; the same settings come from ``MLQI_HOST``, ``MLQI_PORT``, ``MLQI_CORPUS``,
``MLQI_INDEX_DIR``, ``MLQI_EXPORT_DIR``, and ``MLQI_AUTH=user:password`` adds a login. With the
default (extractive) engine nothing leaves this machine: no share link, no analytics.

The app itself lives in ``mlqi_rag/ui.py`` and is started by ``mlqi_rag/serve.py``; this file only
makes sure the offline environment is set before Gradio or any model library is imported.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from mlqi_rag.settings import offline_environment


def main(argv: Sequence[str] | None = None) -> int:
    offline_environment()  # before gradio / torch / chromadb are imported
    from mlqi_rag.serve import main as run_app

    return run_app(argv)


if __name__ == "__main__":
    sys.exit(main())
